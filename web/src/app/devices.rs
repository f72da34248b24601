//! The devices panel: the camera, microphone and speaker to use, switched during the meeting.

use dioxus::prelude::*;

use super::handles::{CloseButton, CommandsHandle};
use crate::media::capture::{self, Device};
use crate::session::Command;

/// The devices panel.
#[component]
pub fn DevicesPanel(commands: CommandsHandle) -> Element {
    let devices = use_resource(capture::devices);
    let listed = devices.read().clone().unwrap_or_default();
    rsx! {
        aside { class: "panel", "aria-label": "devices",
            div { class: "panel-head", h2 { "Devices" } CloseButton {} }
            div { class: "device-form",
                DevicePicker { id: "switch-camera", label: "Camera", devices: listed.cameras.clone(),
                    on_pick: move |id| commands.send(Command::SwitchCamera(id)) }
                DevicePicker { id: "switch-microphone", label: "Microphone", devices: listed.microphones.clone(),
                    on_pick: move |id| commands.send(Command::SwitchMicrophone(id)) }
                if !listed.speakers.is_empty() {
                    DevicePicker { id: "switch-speaker", label: "Speaker", devices: listed.speakers.clone(),
                        on_pick: move |id| commands.send(Command::SwitchSpeaker(id)) }
                }
            }
        }
    }
}

#[component]
fn DevicePicker(
    id: String,
    label: String,
    devices: Vec<Device>,
    on_pick: EventHandler<String>,
) -> Element {
    rsx! {
        label { r#for: "{id}", "{label}" }
        select { id: "{id}", onchange: move |event| on_pick.call(event.value()),
            option { value: "", disabled: true, selected: true, "Choose…" }
            for device in devices.iter() {
                option { value: "{device.id}", "{device.label}" }
            }
        }
    }
}
