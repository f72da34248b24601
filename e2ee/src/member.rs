//! One participant's side of a meeting's MLS group (RFC 9420): who it is, the group as it knows
//! it, the commits it proposes, and what the delivery service's handshake messages do to it.
//!
//! The delivery service (the relays) puts the meeting's handshake messages in one order and
//! hands every member all of them, its own included. A member's commit is only proposed until
//! it comes back: if another commit of the same epoch comes first, that one wins, the member's
//! own is dropped and [`Member::redo`] proposes again whatever of it still applies. Nobody waits
//! on anybody, so there is no deadlock; commits of an epoch the group has left are refused as
//! stale, which is also what a replayed commit is.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialWithKey, GroupId, KeyPackage, KeyPackageIn,
    LeafNodeIndex, MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn,
    MlsMessageIn, ProcessedMessageContent, ProtocolVersion, StagedWelcome,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::crypto::OpenMlsCrypto as _;
use openmls_traits::types::HashType;
use openmls_traits::OpenMlsProvider as _;

use crate::credentials::{CredentialCheck, Identity};
use crate::frame_jobs::{OpenJob, SealJob};
use crate::frames::{FrameKeys, Opened, BASE_KEY_LABEL, INDEX_BITS};
use crate::E2eeError;

/// The MLS cipher suite: X25519, AES-128-GCM, SHA-256, Ed25519.
const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
/// Most members of a group: every leaf index must fit a key id.
pub const MAX_MEMBERS: usize = 1 << INDEX_BITS;

/// A commit for the delivery service to order.
#[derive(Debug, Clone)]
pub struct Proposed {
    /// The commit (an MLS message).
    pub commit: Vec<u8>,
    /// The Welcome of the members it adds (an MLS message), if it adds any: for the delivery
    /// service to hand them only if the commit wins.
    pub welcome: Option<Vec<u8>>,
}

/// What a handshake message from the delivery service did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// This member's own commit came back first: the group is at `epoch`. `welcome` goes to
    /// the members the commit added.
    Committed {
        /// The new epoch.
        epoch: u64,
        /// The Welcome for those added, if any were.
        welcome: Option<Vec<u8>>,
    },
    /// Another member's commit: the group is at `epoch`. `superseded`: this member had a
    /// commit of its own pending, which lost; [`Member::redo`] proposes what is left of it.
    Advanced {
        /// The new epoch.
        epoch: u64,
        /// A commit of this member's lost.
        superseded: bool,
    },
    /// A commit removed this member: it holds no keys any more.
    Removed,
}

/// What a commit of this member's was for, to propose again if it loses.
#[derive(Debug, Clone)]
enum Intent {
    Add(Vec<KeyPackage>),
    Remove(Vec<String>),
}

struct Pending {
    commit: Vec<u8>,
    welcome: Option<Vec<u8>>,
    intent: Intent,
}

/// A participant's MLS signing key (Ed25519): made before joining, so that the control plane
/// can sign it into the participant's credential. A clone is the same key (a client that
/// joins again keeps it).
#[derive(Clone)]
pub struct SigningKey(SignatureKeyPair);

impl SigningKey {
    /// A new key.
    pub fn generate() -> Result<Self, E2eeError> {
        SignatureKeyPair::new(CIPHERSUITE.signature_algorithm())
            .map(SigningKey)
            .map_err(E2eeError::crypto)
    }

    /// The public key (32 bytes), for the control plane to sign into the credential.
    pub fn public(&self) -> Vec<u8> {
        self.0.to_public_vec()
    }
}

/// One participant: an MLS identity and signing key, the group once it created or joined one,
/// and the SFrame keys of the group's epochs.
pub struct Member {
    name: String,
    check: Arc<dyn CredentialCheck + Send + Sync>,
    checked: HashMap<(Vec<u8>, Vec<u8>), Identity>,
    roster: BTreeMap<u32, Identity>,
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
    group: Option<MlsGroup>,
    pending: Option<Pending>,
    superseded: Option<Intent>,
    keys: FrameKeys,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.name)
            .field("epoch", &self.epoch())
            .field("pending", &self.pending.is_some())
            .finish()
    }
}

fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .use_ratchet_tree_extension(true)
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .build()
}

impl Member {
    /// A participant holding `key`, known to the others by `credential` (the control plane's
    /// signature on who holds the key), checking everyone's credential with `check`. Its own
    /// credential is checked first.
    pub fn new(
        key: SigningKey,
        credential: Vec<u8>,
        check: Arc<dyn CredentialCheck + Send + Sync>,
    ) -> Result<Self, E2eeError> {
        let own = check.check(&credential, &key.public())?;
        let provider = OpenMlsRustCrypto::default();
        let signer = key.0;
        signer
            .store(provider.storage())
            .map_err(E2eeError::crypto)?;
        let credential = CredentialWithKey {
            credential: BasicCredential::new(credential).into(),
            signature_key: signer.to_public_vec().into(),
        };
        Ok(Member {
            name: own.user,
            check,
            checked: HashMap::new(),
            roster: BTreeMap::new(),
            provider,
            signer,
            credential,
            group: None,
            pending: None,
            superseded: None,
            keys: FrameKeys::new(),
        })
    }

    /// Who the owner of `credential` signing with `signature_key` is, as the check says
    /// (remembered: a credential is checked once).
    fn identify(
        &mut self,
        credential: &openmls::prelude::Credential,
        signature_key: &[u8],
    ) -> Result<Identity, E2eeError> {
        let cache_key = (
            credential.serialized_content().to_vec(),
            signature_key.to_vec(),
        );
        if let Some(known) = self.checked.get(&cache_key) {
            return Ok(known.clone());
        }
        let identity = self.check.check(&cache_key.0, signature_key)?;
        self.checked.insert(cache_key, identity.clone());
        Ok(identity)
    }

    /// Who the owner of a key package is.
    fn identify_package(&mut self, package: &KeyPackage) -> Result<Identity, E2eeError> {
        let leaf = package.leaf_node();
        self.identify(leaf.credential(), leaf.signature_key().as_slice())
    }

    /// The member's identity.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The member's public signing key (what a join grant binds to the identity).
    pub fn signature_key(&self) -> Vec<u8> {
        self.signer.to_public_vec()
    }

    /// The group's epoch, once in a group.
    pub fn epoch(&self) -> Option<u64> {
        self.group.as_ref().map(|g| g.epoch().as_u64())
    }

    /// Every member of the current epoch by leaf index, as their credentials say.
    pub fn roster(&self) -> &BTreeMap<u32, Identity> {
        &self.roster
    }

    /// This member's leaf index, once in a group.
    pub fn own_leaf(&self) -> Option<u32> {
        self.group.as_ref().map(|g| g.own_leaf_index().u32())
    }

    /// Whether a commit of this member's waits for the delivery service.
    pub fn has_pending_commit(&self) -> bool {
        self.pending.is_some()
    }

    /// Who owns a key package, after checking its signature and credential.
    pub fn key_package_owner(&mut self, key_package: &[u8]) -> Result<Identity, E2eeError> {
        let package = KeyPackageIn::tls_deserialize_exact(key_package)
            .map_err(|e| E2eeError::malformed("key package", e))?
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| E2eeError::refused("key package", e))?;
        self.identify_package(&package)
    }

    /// Drops this member's commit that the delivery service refused (it will apply the one
    /// that came first instead).
    pub fn abandon_commit(&mut self) -> Result<(), E2eeError> {
        if self.pending.take().is_some() {
            let provider = &self.provider;
            if let Some(group) = self.group.as_mut() {
                group
                    .clear_pending_commit(provider.storage())
                    .map_err(E2eeError::crypto)?;
            }
        }
        self.superseded = None;
        Ok(())
    }

    /// Leaves the group without a word (it was founded afresh, or this member lost track of
    /// it): no group, no keys, ready to be welcomed again.
    pub fn reset(&mut self) {
        if let Some(mut group) = self.group.take() {
            // Its state leaves the provider's storage too, so the group can be joined again.
            if let Err(error) = group.delete(self.provider.storage()) {
                tracing::debug!(%error, "deleting a left group's state");
            }
        }
        self.pending = None;
        self.superseded = None;
        self.keys.forget_all();
        self.roster.clear();
    }

    /// The members' users, by leaf index.
    pub fn members(&self) -> Vec<String> {
        self.roster.values().map(|i| i.user.clone()).collect()
    }

    /// The user at a leaf index of the current epoch.
    pub fn member_at(&self, leaf: u32) -> Option<String> {
        self.roster.get(&leaf).map(|i| i.user.clone())
    }

    /// Who is at a leaf index of the current epoch, as their credential says.
    pub fn identity_at(&self, leaf: u32) -> Option<&Identity> {
        self.roster.get(&leaf)
    }

    /// A short code for the member at `leaf`, for people to compare out of band (read aloud):
    /// every member computes the same code for the same person's key in this meeting, and a
    /// key slipped in by someone else gives another code. Ten digits in two groups.
    pub fn verification_code(&self, leaf: u32) -> Option<String> {
        let group = self.group.as_ref()?;
        let member = group.member_at(LeafNodeIndex::new(leaf))?;
        let mut input = Vec::new();
        for part in [
            b"videocall verification code".as_slice(),
            group.group_id().as_slice(),
            member.credential.serialized_content(),
            &member.signature_key,
        ] {
            input.extend_from_slice(&(part.len() as u32).to_be_bytes());
            input.extend_from_slice(part);
        }
        let digest = self
            .provider
            .crypto()
            .hash(HashType::Sha2_256, &input)
            .ok()?;
        let number = digest
            .iter()
            .take(8)
            .fold(0u64, |n, b| (n << 8) | u64::from(*b))
            % 10_000_000_000;
        Some(format!("{:05} {:05}", number / 100_000, number % 100_000))
    }

    /// A key package: what another member adds this one to the group with. Each is good for
    /// one join.
    pub fn key_package(&self) -> Result<Vec<u8>, E2eeError> {
        let bundle = KeyPackage::builder()
            .build(
                CIPHERSUITE,
                &self.provider,
                &self.signer,
                self.credential.clone(),
            )
            .map_err(E2eeError::crypto)?;
        bundle
            .key_package()
            .tls_serialize_detached()
            .map_err(E2eeError::crypto)
    }

    /// Starts the group of `meeting` with this member alone in it (epoch 0).
    pub fn create(&mut self, meeting: &str) -> Result<(), E2eeError> {
        if self.group.is_some() {
            return Err(E2eeError::AlreadyInGroup);
        }
        let group = MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &create_config(),
            GroupId::from_slice(meeting.as_bytes()),
            self.credential.clone(),
        )
        .map_err(E2eeError::crypto)?;
        self.group = Some(group);
        self.enter_epoch()
    }

    /// Joins from a Welcome another member's commit made.
    pub fn join(&mut self, welcome: &[u8]) -> Result<u64, E2eeError> {
        if self.group.is_some() {
            return Err(E2eeError::AlreadyInGroup);
        }
        let message = MlsMessageIn::tls_deserialize_exact(welcome)
            .map_err(|e| E2eeError::malformed("welcome", e))?;
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            return Err(E2eeError::malformed("welcome", "not a Welcome message"));
        };
        let staged = StagedWelcome::new_from_welcome(&self.provider, &join_config(), welcome, None)
            .map_err(|e| E2eeError::refused("welcome", e))?;
        let members: Vec<_> = staged.members().collect();
        for member in &members {
            self.identify(&member.credential, &member.signature_key)?;
        }
        let group = staged
            .into_group(&self.provider)
            .map_err(|e| E2eeError::refused("welcome", e))?;
        self.group = Some(group);
        self.enter_epoch()?;
        Ok(self.epoch().unwrap_or_default())
    }

    fn no_pending(&self) -> Result<(), E2eeError> {
        if self.pending.is_some() {
            return Err(E2eeError::refused(
                "commit",
                "a commit of this member is still waiting for the delivery service",
            ));
        }
        Ok(())
    }

    /// Proposes adding the owners of `key_packages` (a commit, and a Welcome released when the
    /// commit comes back first). A key package that does not verify, or of someone already in
    /// the group, is refused.
    pub fn propose_add(&mut self, key_packages: &[&[u8]]) -> Result<Proposed, E2eeError> {
        self.no_pending()?;
        let mut valid = Vec::with_capacity(key_packages.len());
        for bytes in key_packages {
            let package = KeyPackageIn::tls_deserialize_exact(bytes)
                .map_err(|e| E2eeError::malformed("key package", e))?
                .validate(self.provider.crypto(), ProtocolVersion::Mls10)
                .map_err(|e| E2eeError::refused("key package", e))?;
            self.identify_package(&package)?;
            valid.push(package);
        }
        self.commit(Intent::Add(valid))
    }

    /// Proposes removing the members named `names`.
    pub fn propose_remove(&mut self, names: &[&str]) -> Result<Proposed, E2eeError> {
        self.no_pending()?;
        let members = self.members();
        if let Some(unknown) = names.iter().find(|n| !members.iter().any(|m| m == *n)) {
            return Err(E2eeError::UnknownMember((*unknown).to_owned()));
        }
        self.commit(Intent::Remove(
            names.iter().map(|n| (*n).to_owned()).collect(),
        ))
    }

    /// Proposes again what a commit that lost (see [`Handled::Advanced`]) was for, leaving out
    /// what the winning commit already did. `None` when nothing is left to do.
    pub fn redo(&mut self) -> Result<Option<Proposed>, E2eeError> {
        self.no_pending()?;
        let members = self.members();
        let left = match self.superseded.take() {
            None => return Ok(None),
            Some(Intent::Add(packages)) => {
                let mut left = Vec::new();
                for package in packages {
                    if !members.contains(&self.identify_package(&package)?.user) {
                        left.push(package);
                    }
                }
                Intent::Add(left)
            }
            Some(Intent::Remove(names)) => {
                Intent::Remove(names.into_iter().filter(|n| members.contains(n)).collect())
            }
        };
        match &left {
            Intent::Add(p) if p.is_empty() => Ok(None),
            Intent::Remove(n) if n.is_empty() => Ok(None),
            _ => self.commit(left).map(Some),
        }
    }

    fn commit(&mut self, intent: Intent) -> Result<Proposed, E2eeError> {
        let members = self.members();
        let (commit, welcome) = match &intent {
            Intent::Add(packages) => {
                for package in packages {
                    let who = self.identify_package(package)?;
                    if members.contains(&who.user) {
                        return Err(E2eeError::refused(
                            "key package",
                            format!("{} is already a member", who.user),
                        ));
                    }
                }
                if members.len() + packages.len() > MAX_MEMBERS {
                    return Err(E2eeError::TooManyMembers { max: MAX_MEMBERS });
                }
                let (provider, signer) = (&self.provider, &self.signer);
                let group = self.group.as_mut().ok_or(E2eeError::NoGroup)?;
                let (commit, welcome, _) = group
                    .add_members(provider, signer, packages)
                    .map_err(|e| E2eeError::refused("commit", e))?;
                (commit, Some(welcome))
            }
            Intent::Remove(names) => {
                let leaves: Vec<LeafNodeIndex> = self
                    .roster
                    .iter()
                    .filter(|(_, who)| names.contains(&who.user))
                    .map(|(leaf, _)| LeafNodeIndex::new(*leaf))
                    .collect();
                let (provider, signer) = (&self.provider, &self.signer);
                let group = self.group.as_mut().ok_or(E2eeError::NoGroup)?;
                let (commit, welcome, _) = group
                    .remove_members(provider, signer, &leaves)
                    .map_err(|e| E2eeError::refused("commit", e))?;
                (commit, welcome)
            }
        };
        let commit = commit.to_bytes().map_err(E2eeError::crypto)?;
        let welcome = welcome
            .map(|w| w.to_bytes())
            .transpose()
            .map_err(E2eeError::crypto)?;
        self.pending = Some(Pending {
            commit: commit.clone(),
            welcome: welcome.clone(),
            intent,
        });
        Ok(Proposed { commit, welcome })
    }

    /// Applies a handshake message the delivery service ordered (this member's own commits
    /// included). Anything but a commit of the group's current epoch by a member is refused
    /// and changes nothing.
    pub fn handle(&mut self, message: &[u8]) -> Result<Handled, E2eeError> {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.commit.as_slice() == message)
        {
            let provider = &self.provider;
            let group = self.group.as_mut().ok_or(E2eeError::NoGroup)?;
            group
                .merge_pending_commit(provider)
                .map_err(E2eeError::crypto)?;
            let welcome = self.pending.take().and_then(|p| p.welcome);
            self.enter_epoch()?;
            return Ok(Handled::Committed {
                epoch: self.epoch().unwrap_or_default(),
                welcome,
            });
        }
        let decoded = MlsMessageIn::tls_deserialize_exact(message)
            .map_err(|e| E2eeError::malformed("handshake", e))?;
        let protocol = decoded
            .try_into_protocol_message()
            .map_err(|e| E2eeError::malformed("handshake", e))?;
        let group = self.group.as_mut().ok_or(E2eeError::NoGroup)?;
        if protocol.group_id() != group.group_id() {
            return Err(E2eeError::refused("handshake", "another group's message"));
        }
        let (theirs, ours) = (protocol.epoch().as_u64(), group.epoch().as_u64());
        if theirs < ours {
            return Err(E2eeError::StaleEpoch {
                message: theirs,
                group: ours,
            });
        }
        if theirs > ours {
            return Err(E2eeError::refused(
                "handshake",
                format!("epoch {theirs} is ahead of the group's {ours}"),
            ));
        }
        let provider = &self.provider;
        let processed = group
            .process_message(provider, protocol)
            .map_err(|e| E2eeError::refused("handshake", e))?;
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            return Err(E2eeError::refused("handshake", "only commits are accepted"));
        };
        let added: Vec<(openmls::prelude::Credential, Vec<u8>)> = staged
            .add_proposals()
            .map(|add| {
                let leaf = add.add_proposal().key_package().leaf_node();
                (
                    leaf.credential().clone(),
                    leaf.signature_key().as_slice().to_vec(),
                )
            })
            .collect();
        for (credential, key) in &added {
            // A commit adding someone whose credential does not check is not applied.
            self.identify(credential, key)?;
        }
        let provider = &self.provider;
        let group = self.group.as_mut().ok_or(E2eeError::NoGroup)?;
        let removed = staged.self_removed();
        group
            .merge_staged_commit(provider, *staged)
            .map_err(E2eeError::crypto)?;
        if removed {
            self.reset();
            return Ok(Handled::Removed);
        }
        let superseded = self.pending.take().map(|p| p.intent);
        let lost = superseded.is_some();
        self.superseded = superseded;
        self.enter_epoch()?;
        Ok(Handled::Advanced {
            epoch: self.epoch().unwrap_or_default(),
            superseded: lost,
        })
    }

    fn enter_epoch(&mut self) -> Result<(), E2eeError> {
        let members: Vec<_> = self
            .group
            .as_ref()
            .ok_or(E2eeError::NoGroup)?
            .members()
            .collect();
        let mut roster = BTreeMap::new();
        for member in members {
            let who = self.identify(&member.credential, &member.signature_key)?;
            roster.insert(member.index.u32(), who);
        }
        self.roster = roster;
        let group = self.group.as_ref().ok_or(E2eeError::NoGroup)?;
        let base_key = group
            .export_secret(
                self.provider.crypto(),
                BASE_KEY_LABEL,
                b"",
                FrameKeys::base_key_len(),
            )
            .map_err(E2eeError::crypto)?;
        self.keys.enter_epoch(
            group.epoch().as_u64(),
            group.own_leaf_index().u32(),
            base_key,
        )
    }

    /// Seals a frame (or chat message) under this member's key of the current epoch;
    /// `metadata` is authenticated and travels in clear beside it.
    pub fn seal(&mut self, metadata: &[u8], payload: &[u8]) -> Result<Vec<u8>, E2eeError> {
        self.keys.seal(metadata, payload)
    }

    /// Opens a frame sealed by a member of the current (or previous) epoch.
    pub fn open(&mut self, metadata: &[u8], frame: &[u8]) -> Result<Opened, E2eeError> {
        self.keys.open(metadata, frame)
    }

    /// The next frame to seal, for a cipher outside ([`FrameKeys::prepare_seal`]).
    pub fn prepare_seal(&mut self, metadata: &[u8]) -> Result<SealJob, E2eeError> {
        self.keys.prepare_seal(metadata)
    }

    /// A received frame to open in a cipher outside ([`FrameKeys::prepare_open`]).
    pub fn prepare_open(&mut self, metadata: &[u8], frame: &[u8]) -> Result<OpenJob, E2eeError> {
        self.keys.prepare_open(metadata, frame)
    }

    /// What the cipher outside made of `job` ([`FrameKeys::finish_open`]).
    pub fn finish_open(
        &mut self,
        job: OpenJob,
        plaintext: Option<Vec<u8>>,
    ) -> Result<Opened, E2eeError> {
        self.keys.finish_open(job, plaintext)
    }

    /// Forgets the previous epoch's keys (once its frames can no longer be in flight).
    pub fn forget_previous_epoch(&mut self) {
        self.keys.forget_previous();
    }
}
