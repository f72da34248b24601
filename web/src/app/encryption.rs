//! The meeting's end-to-end encryption in the page: the header's badge and the members'
//! verification codes.

use dioxus::prelude::*;

use super::icons::{Icon, IconName};
use crate::session::EncryptionView;

/// The meeting's encryption state in the header: encrypted (with its epoch), or joining the
/// encrypted group (nothing is sent meanwhile).
#[component]
pub fn EncryptionBadge(view: EncryptionView) -> Element {
    if !view.required {
        return rsx! {};
    }
    match view.epoch {
        Some(epoch) => rsx! {
            span { class: "badge e2ee", "data-testid": "e2ee", "data-epoch": "{epoch}",
                title: "Media and chat are encrypted end to end: only the participants can read them (epoch {epoch}). The participants panel shows everyone's verification code.",
                Icon { name: IconName::Lock }
                " End-to-end encrypted"
            }
        },
        None => rsx! {
            span { class: "badge e2ee waiting", "data-testid": "e2ee", role: "status",
                title: view.waiting_reason.clone().unwrap_or_default(),
                Icon { name: IconName::Lock }
                " Joining the encrypted group…"
            }
        },
    }
}

/// Every member of the encrypted group with its verification code, for people to compare
/// out of band.
#[component]
pub fn EncryptionMembers(view: EncryptionView) -> Element {
    rsx! {
        h3 { "End-to-end encryption" }
        p { class: "hint",
            "Read your code to the others: everyone sees the same code for the same person. A code that differs means someone else holds that key."
        }
        ul { "data-testid": "e2ee-members",
            for member in view.members.iter() {
                li { key: "{member.code}", "data-code": "{member.code}",
                    "{member.name}"
                    if member.me { " (you)" }
                    if member.guest { " · guest" }
                    " · "
                    code { "{member.code}" }
                }
            }
        }
    }
}
