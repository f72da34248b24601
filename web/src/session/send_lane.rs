//! The local tracks' frames on their way to the relay, in the order the encoders made them
//! although sealing one may take a while (WebCrypto): a task sends each once it and every
//! frame before it is sealed. A frame ready at once with none in flight goes at once.

use std::cell::Cell;
use std::rc::Rc;

use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_util::stream::FuturesOrdered;
use futures_util::{select, StreamExt};
use videocall_protocol::wire::Envelope;

use super::core_session::Soon;

/// Sends an envelope on the current connection.
pub type SendEnvelope = Rc<dyn Fn(Envelope)>;

/// The lane; clones share it. Its task ends once every clone is gone and the frames in
/// flight are sent.
#[derive(Clone)]
pub struct SendLane {
    queue: UnboundedSender<Soon<Envelope>>,
    in_flight: Rc<Cell<usize>>,
    send: SendEnvelope,
}

impl SendLane {
    /// Starts the lane's task; frames go out through `send`.
    pub fn start(send: SendEnvelope) -> Self {
        let (queue, mut frames) = unbounded::<Soon<Envelope>>();
        let in_flight = Rc::new(Cell::new(0usize));
        let (count, out) = (in_flight.clone(), send.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let mut waiting = FuturesOrdered::new();
            loop {
                select! {
                    frame = frames.next() => {
                        if let Some(frame) = frame {
                            waiting.push_back(frame.into_future());
                        }
                    }
                    sealed = waiting.select_next_some() => {
                        count.set(count.get().saturating_sub(1));
                        if let Some(envelope) = sealed {
                            out(envelope);
                        }
                    }
                    complete => break,
                }
            }
        });
        SendLane {
            queue,
            in_flight,
            send,
        }
    }

    /// Sends `frame` once it is sealed and every frame before it has gone.
    pub fn send(&self, frame: Soon<Envelope>) {
        match frame {
            Soon::Now(envelope) if self.in_flight.get() == 0 => {
                if let Some(envelope) = envelope {
                    (self.send)(envelope);
                }
            }
            frame => {
                self.in_flight.set(self.in_flight.get() + 1);
                // The task lives while a clone of the lane does: the channel is open.
                let _ = self.queue.unbounded_send(frame);
            }
        }
    }
}
