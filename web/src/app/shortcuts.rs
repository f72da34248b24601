//! Keyboard shortcuts in the meeting, heard on the whole document (wherever the focus is,
//! except in a text field, where keys are the person's) and handed to the page in order.

use dioxus::prelude::*;
use futures_util::StreamExt;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::KeyboardEvent;

use crate::hosting::{self, Shortcut};
use crate::js;

/// The document's keydown listener, removed when the meeting is left.
struct Listener(Closure<dyn FnMut(KeyboardEvent)>);

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = js::document()
            .remove_event_listener_with_callback("keydown", self.0.as_ref().unchecked_ref());
    }
}

/// Calls `on` with every shortcut pressed while the calling component is mounted.
pub fn use_shortcuts(mut on: impl FnMut(Shortcut) + 'static) {
    use_hook(move || {
        let (tx, mut rx) = futures_channel::mpsc::unbounded::<Shortcut>();
        let listener = Listener(Closure::new(move |event: KeyboardEvent| {
            if typing() {
                return;
            }
            let modified = event.ctrl_key() || event.alt_key() || event.meta_key();
            if let Some(shortcut) = hosting::shortcut(&event.key(), modified) {
                event.prevent_default();
                let _ = tx.unbounded_send(shortcut);
            }
        }));
        let _ = js::document()
            .add_event_listener_with_callback("keydown", listener.0.as_ref().unchecked_ref());
        spawn(async move {
            let _listener = listener;
            while let Some(shortcut) = rx.next().await {
                on(shortcut);
            }
        });
    });
}

/// Whether the person is typing (a key then is theirs, not a shortcut).
fn typing() -> bool {
    js::document()
        .active_element()
        .map(|element| matches!(element.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"))
        .unwrap_or(false)
}
