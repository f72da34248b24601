//! The browser's own AES-128-GCM (WebCrypto) for the SFrame frames the client core prepares
//! (`videocall_e2ee::SealJob`, `OpenJob`): it runs natively, with the CPU's AES instructions,
//! and off the page's main thread (Chromium and Firefox both hand `crypto.subtle` work to a
//! thread pool of their own and resolve the promise back on the page), where the wasm cipher
//! took tens of microseconds of the main thread per frame. Each call is asynchronous: the
//! callers keep frames in order themselves.
//!
//! Keys are imported once per sender and epoch (non-extractable) and kept by their bytes; a
//! frame whose key is still being imported waits for it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Array, ArrayBuffer, Promise, Uint8Array};
use videocall_e2ee::{AesGcmInput, OpenJob, SealJob, KEY_LEN};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AesGcmParams, CryptoKey, SubtleCrypto};

use crate::js;

/// Keys kept before the cache starts afresh (a meeting uses one per sender and epoch, two
/// epochs at a time).
const KEPT_KEYS: usize = 256;
/// AES-GCM's tag, in bits.
const TAG_BITS: u8 = 128;

#[derive(Clone)]
enum Key {
    Ready(CryptoKey),
    Importing(Promise),
}

/// AES-128-GCM in the browser's WebCrypto.
#[derive(Clone)]
pub struct WebCrypto {
    subtle: SubtleCrypto,
    keys: Rc<RefCell<HashMap<[u8; KEY_LEN], Key>>>,
}

impl WebCrypto {
    /// The page's WebCrypto; `None` where it has none (not a secure context).
    pub fn new() -> Option<Self> {
        let crypto = js::window().crypto().ok()?;
        let subtle = js::get(&crypto, "subtle");
        if subtle.is_undefined() || subtle.is_null() {
            return None;
        }
        Some(WebCrypto {
            subtle: subtle.unchecked_into(),
            keys: Rc::default(),
        })
    }

    /// Seals `payload` as `job` says; resolves to the ciphertext and tag (`job.frame` of
    /// them is the SFrame).
    pub fn seal(
        &self,
        job: &SealJob,
        payload: &[u8],
    ) -> impl std::future::Future<Output = Result<Vec<u8>, JsValue>> {
        let started = self.run(job.input(), payload, Direction::Seal);
        async move { started?.await }
    }

    /// Opens `job`'s ciphertext; resolves to the plaintext, or `None` when it does not
    /// authenticate.
    pub fn open(&self, job: &OpenJob) -> impl std::future::Future<Output = Option<Vec<u8>>> {
        let started = self.run(job.input(), job.ciphertext(), Direction::Open);
        async move { started.ok()?.await.ok() }
    }

    /// Starts the AES-GCM call now (the bytes are copied before this returns), or as soon as
    /// the key is imported.
    fn run(
        &self,
        input: &AesGcmInput,
        data: &[u8],
        direction: Direction,
    ) -> Result<impl std::future::Future<Output = Result<Vec<u8>, JsValue>>, JsValue> {
        let params =
            AesGcmParams::new_with_u8_array("AES-GCM", &Uint8Array::from(&input.nonce()[..]));
        params.set_additional_data_u8_array(&Uint8Array::from(input.aad()));
        params.set_tag_length(TAG_BITS);
        let subtle = self.subtle.clone();
        let call = move |key: &CryptoKey, data: &[u8]| match direction {
            Direction::Seal => subtle.encrypt_with_object_and_u8_array(&params, key, data),
            Direction::Open => subtle.decrypt_with_object_and_u8_array(&params, key, data),
        };
        let pending = match self.key(input.key())? {
            Key::Ready(key) => Pending::Started(JsFuture::from(call(&key, data)?)),
            Key::Importing(import) => Pending::AfterImport(import, data.to_vec(), Box::new(call)),
        };
        Ok(async move {
            let result = match pending {
                Pending::Started(future) => future.await?,
                Pending::AfterImport(import, data, call) => {
                    let key: CryptoKey = JsFuture::from(import).await?.unchecked_into();
                    JsFuture::from(call(&key, &data)?).await?
                }
            };
            Ok(Uint8Array::new(&result.unchecked_into::<ArrayBuffer>()).to_vec())
        })
    }

    /// The key of `bytes`: imported already, or being imported (started here if new).
    fn key(&self, bytes: &[u8; KEY_LEN]) -> Result<Key, JsValue> {
        if let Some(key) = self.keys.borrow().get(bytes) {
            return Ok(key.clone());
        }
        let usages = Array::of2(&"encrypt".into(), &"decrypt".into());
        let import = self.subtle.import_key_with_str(
            "raw",
            &Uint8Array::from(&bytes[..]),
            "AES-GCM",
            false,
            &usages,
        )?;
        let mut keys = self.keys.borrow_mut();
        if keys.len() >= KEPT_KEYS {
            keys.clear();
        }
        keys.insert(*bytes, Key::Importing(import.clone()));
        // Once imported, later frames start at once.
        let (cache, bytes_kept, import_kept) = (self.keys.clone(), *bytes, import.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let imported = JsFuture::from(import_kept).await;
            let mut cache = cache.borrow_mut();
            match imported {
                Ok(key) => {
                    if let Some(slot) = cache.get_mut(&bytes_kept) {
                        *slot = Key::Ready(key.unchecked_into());
                    }
                }
                // The next frame of this key tries again.
                Err(error) => {
                    cache.remove(&bytes_kept);
                    web_sys::console::warn_1(
                        &format!("WebCrypto: key import failed: {}", js::error_text(&error)).into(),
                    );
                }
            }
        });
        Ok(Key::Importing(import))
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Seal,
    Open,
}

type Call = Box<dyn Fn(&CryptoKey, &[u8]) -> Result<Promise, JsValue>>;

enum Pending {
    Started(JsFuture),
    AfterImport(Promise, Vec<u8>, Call),
}
