//! The page: which screen the address asks for, and the screens shared by all of them.

mod controls;
mod devices;
mod encryption;
mod handles;
mod icons;
mod lobby;
mod meeting;
mod people;
mod shortcuts;

use dioxus::prelude::*;

use crate::js;
use crate::route::{self, Route};
use crate::session::Failure;

/// The root component.
#[component]
pub fn App() -> Element {
    let location = js::window().location();
    let path = location.pathname().unwrap_or_default();
    let query = location.search().unwrap_or_default();
    let route = route::parse(&path, query.trim_start_matches('?'));
    rsx! {
        match route {
            Route::Meeting { user, meeting, transport, capture, video_size, frames, simulcast } => rsx! {
                meeting::MeetingPage { user, meeting, transport, capture, video_size, frames, simulcast }
            },
            Route::Invalid(reason) => rsx! {
                Notice { title: "This meeting address is not valid", detail: reason }
            },
            Route::Home => rsx! {
                Notice {
                    title: "videocall",
                    detail: "Open /meeting/<your-name>/<meeting-id> to join a meeting; the meeting demo admits guests.",
                }
            },
        }
    }
}

/// A full-page message.
#[component]
pub fn Notice(title: String, detail: String, children: Element) -> Element {
    rsx! {
        main { class: "notice", role: "alert",
            h1 { "{title}" }
            p { "{detail}" }
            {children}
        }
    }
}

/// Title and explanation of a failure, for people.
pub fn describe(failure: &Failure) -> (String, String) {
    match failure {
        Failure::MeetingFull => (
            "This meeting is full".into(),
            "It already has as many participants as it admits. Try again later.".into(),
        ),
        Failure::NotAllowed(why) => (
            "You are not allowed into this meeting".into(),
            format!("The meeting's owner has to let you in ({why})."),
        ),
        Failure::Locked(_) => (
            "This meeting is locked".into(),
            "A host locked it: nobody new gets in until a host unlocks it. Try again later.".into(),
        ),
        Failure::Removed(why) => (
            "A host removed you from the meeting".into(),
            if why.is_empty() || why == "removed by a host" {
                "You are no longer in this meeting.".into()
            } else {
                format!("The host said: {why}")
            },
        ),
        Failure::Ended(_) => (
            "The meeting has ended".into(),
            "It was ended for everyone: a host ended it, or its owner closed it.".into(),
        ),
        Failure::TurnedAway(why) => (
            "A host did not let you in".into(),
            if why.is_empty() {
                "The meeting's host turned your request away.".into()
            } else {
                format!("The host said: {why}")
            },
        ),
        Failure::NotFound => (
            "There is no such meeting".into(),
            "Check the meeting id in the address.".into(),
        ),
        Failure::Replaced => (
            "You joined this meeting somewhere else".into(),
            "Another window or device joined as you, and took this place. Reload this page to \
             move the meeting back here."
                .into(),
        ),
        Failure::Expired(why) => (
            "This meeting is over or your invitation expired".into(),
            why.clone(),
        ),
        Failure::Encryption(why) => (
            "This meeting's end-to-end encryption could not start".into(),
            format!(
                "Its media and chat are encrypted so that only its participants can read them, \
                 and this browser could not take part ({why}). Nothing was sent."
            ),
        ),
        Failure::Unreachable(why) => (
            "The server cannot be reached".into(),
            format!("Check your connection and try again ({why})."),
        ),
        Failure::TransportsBlocked(why) => (
            "Your network blocks the media connection".into(),
            format!("Neither WebTransport (UDP) nor WebSocket (TCP) could reach the relay: {why}."),
        ),
        Failure::Other(why) => ("Something went wrong".into(), why.clone()),
    }
}
