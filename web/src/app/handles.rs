//! What the meeting's components share: the session's signals and command channel and the
//! local stream as props, which side panel is open (a context), and a panel's close button.

use dioxus::prelude::*;
use futures_channel::mpsc::UnboundedSender;
use web_sys::MediaStream;

use super::icons::{Icon, IconName};
use crate::session::{Command, MeetingSignals};

/// Props need `PartialEq`; a stream is equal to itself.
#[derive(Clone)]
pub struct StreamHandle(pub MediaStream);
impl PartialEq for StreamHandle {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

/// The session's signals as a prop.
#[derive(Clone, Copy)]
pub struct SignalsHandle(pub MeetingSignals);
impl PartialEq for SignalsHandle {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The command channel as a prop.
#[derive(Clone, Copy)]
pub struct CommandsHandle(pub Signal<Option<UnboundedSender<Command>>>);
impl PartialEq for CommandsHandle {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl CommandsHandle {
    /// Sends `command` to the session, if one runs.
    pub fn send(&self, command: Command) {
        if let Some(tx) = self.0.peek().as_ref() {
            let _ = tx.unbounded_send(command);
        }
    }
}

/// The side panel open (a sheet on phones), if any.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Panel {
    /// None open.
    None,
    /// Chat.
    Chat,
    /// Participants, the waiting room and host controls.
    People,
    /// Connection details.
    Connection,
    /// Camera, microphone and speaker.
    Devices,
}

/// The close button of a panel (Escape closes it too).
#[component]
pub fn CloseButton() -> Element {
    let mut panel = use_context::<Signal<Panel>>();
    rsx! {
        button { class: "close", "aria-label": "close the panel", title: "Close (Esc)",
            onclick: move |_| panel.set(Panel::None), Icon { name: IconName::Close } }
    }
}
