//! One participant's side of a meeting's MLS group (RFC 9420): who it is, the group as it knows
//! it, the commits it proposes, and what the delivery service's handshake messages do to it.
//!
//! The delivery service (the relays) puts the meeting's handshake messages in one order and
//! hands every member all of them, its own included. A member's commit is only proposed until
//! it comes back: if another commit of the same epoch comes first, that one wins, the member's
//! own is dropped and [`Member::redo`] proposes again whatever of it still applies. Nobody waits
//! on anybody, so there is no deadlock; commits of an epoch the group has left are refused as
//! stale, which is also what a replayed commit is.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialWithKey, GroupId, KeyPackage, KeyPackageIn,
    LeafNodeIndex, MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn,
    MlsMessageIn, ProcessedMessageContent, ProtocolVersion, StagedWelcome,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::OpenMlsProvider as _;

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

/// One participant: an MLS identity and signing key, the group once it created or joined one,
/// and the SFrame keys of the group's epochs.
pub struct Member {
    name: String,
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

fn identity(credential: &openmls::prelude::Credential) -> String {
    String::from_utf8_lossy(credential.serialized_content()).into_owned()
}

impl Member {
    /// A participant named `name` (its identity in the group), with a new signing key.
    pub fn new(name: &str) -> Result<Self, E2eeError> {
        let provider = OpenMlsRustCrypto::default();
        let signer =
            SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).map_err(E2eeError::crypto)?;
        signer
            .store(provider.storage())
            .map_err(E2eeError::crypto)?;
        let credential = CredentialWithKey {
            credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
            signature_key: signer.to_public_vec().into(),
        };
        Ok(Member {
            name: name.to_owned(),
            provider,
            signer,
            credential,
            group: None,
            pending: None,
            superseded: None,
            keys: FrameKeys::new(),
        })
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

    /// The members' identities, by leaf index.
    pub fn members(&self) -> Vec<String> {
        self.group
            .as_ref()
            .map(|g| g.members().map(|m| identity(&m.credential)).collect())
            .unwrap_or_default()
    }

    /// The identity at a leaf index of the current epoch.
    pub fn member_at(&self, leaf: u32) -> Option<String> {
        let group = self.group.as_ref()?;
        group.member(LeafNodeIndex::new(leaf)).map(identity)
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
        let group = StagedWelcome::new_from_welcome(&self.provider, &join_config(), welcome, None)
            .and_then(|staged| staged.into_group(&self.provider))
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
            Some(Intent::Add(packages)) => Intent::Add(
                packages
                    .into_iter()
                    .filter(|p| !members.contains(&identity(p.leaf_node().credential())))
                    .collect(),
            ),
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
                if let Some(p) = packages
                    .iter()
                    .find(|p| members.contains(&identity(p.leaf_node().credential())))
                {
                    return Err(E2eeError::refused(
                        "key package",
                        format!(
                            "{} is already a member",
                            identity(p.leaf_node().credential())
                        ),
                    ));
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
                let group = self.group.as_ref().ok_or(E2eeError::NoGroup)?;
                let leaves: Vec<LeafNodeIndex> = group
                    .members()
                    .filter(|m| names.contains(&identity(&m.credential)))
                    .map(|m| m.index)
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
            welcome,
            intent,
        });
        Ok(Proposed { commit })
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
        let removed = staged.self_removed();
        group
            .merge_staged_commit(provider, *staged)
            .map_err(E2eeError::crypto)?;
        if removed {
            self.group = None;
            self.pending = None;
            self.superseded = None;
            self.keys.forget_all();
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

    /// Forgets the previous epoch's keys (once its frames can no longer be in flight).
    pub fn forget_previous_epoch(&mut self) {
        self.keys.forget_previous();
    }
}
