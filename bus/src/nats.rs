//! The bus over a real NATS server, through `async-nats`: one connection per relay with
//! `no_echo` (a relay never hears itself), reconnecting forever, with user/password, token,
//! nkey or credentials-file authentication and TLS.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, StorageType};

use crate::chunk::{Chunker, DropCause, Reassembled, Reassembler};
use crate::log::{Appended, LogEntry, KEPT_PER_SUBJECT};
use crate::subject::{check_pattern, check_subject};
use crate::{Bus, BusCounters, BusError, BusMessage, LogFollow, Subscription};

/// Longest wait between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(1000);
/// How long the ordered log keeps an entry: longer than any meeting's commits are needed.
const LOG_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// The log's stream when [`NatsOptions::log_stream`] is empty.
pub const DEFAULT_LOG_STREAM: &str = "VIDEOCALL_LOG";

/// How to reach and authenticate to the NATS server.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// Server URL(s), comma separated (`nats://127.0.0.1:4222`, `tls://…`).
    pub url: String,
    /// Connection name shown by the server (`nats-server`'s connz).
    pub name: String,
    /// User, with `password`.
    pub user: Option<String>,
    /// Password of `user`.
    pub password: Option<String>,
    /// Token authentication.
    pub token: Option<String>,
    /// Nkey seed (`SU…`) authentication.
    pub nkey_seed: Option<String>,
    /// A `.creds` file (JWT and nkey seed).
    pub credentials_file: Option<PathBuf>,
    /// PEM CA certificates to trust for the server's certificate.
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate (with `tls_key`) for mutual TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Refuse to talk to the server without TLS.
    pub require_tls: bool,
    /// Largest message (before chunking) this connection sends or accepts.
    pub max_message: usize,
    /// The JetStream stream that holds the ordered log ([`DEFAULT_LOG_STREAM`] when empty),
    /// made when first used.
    pub log_stream: String,
    /// The subjects of the log (a pattern such as `vc.h.>`); appends and follows must fall
    /// under it.
    pub log_subjects: String,
}

/// One relay's connection to a NATS server.
pub struct NatsBus {
    client: async_nats::Client,
    chunker: Mutex<Chunker>,
    /// Held while the chunks of one large message go out, so they are not interleaved
    /// with another large message's.
    large: tokio::sync::Mutex<()>,
    counters: Arc<BusCounters>,
    max_message: usize,
    jetstream: jetstream::Context,
    log_stream: String,
    log_subjects: String,
    log: tokio::sync::OnceCell<jetstream::stream::Stream>,
}

fn log_error(
    operation: &'static str,
    subject: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> BusError {
    BusError::Log {
        operation,
        subject: subject.to_owned(),
        source: Box::new(source),
    }
}

impl NatsBus {
    /// Connects (once; a server that cannot be reached now is an error) and keeps the
    /// connection up from then on.
    pub async fn connect(options: NatsOptions) -> Result<NatsBus, BusError> {
        let counters = Arc::new(BusCounters::default());
        let events = counters.clone();
        let mut connect = async_nats::ConnectOptions::new();
        if let Some(path) = &options.credentials_file {
            connect =
                connect
                    .credentials_file(path)
                    .await
                    .map_err(|source| BusError::Credentials {
                        path: path.display().to_string(),
                        source,
                    })?;
        }
        if let (Some(user), Some(password)) = (&options.user, &options.password) {
            connect = connect.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &options.token {
            connect = connect.token(token.clone());
        }
        if let Some(seed) = &options.nkey_seed {
            connect = connect.nkey(seed.clone());
        }
        if let Some(ca) = &options.tls_ca {
            connect = connect.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&options.tls_cert, &options.tls_key) {
            connect = connect.add_client_certificate(cert.clone(), key.clone());
        }
        let client = connect
            .require_tls(options.require_tls)
            .name(if options.name.is_empty() {
                "videocall-relay".to_owned()
            } else {
                options.name.clone()
            })
            .no_echo()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            .reconnect_delay_callback(|attempts| {
                (Duration::from_millis(100) * attempts.min(10) as u32).min(MAX_RECONNECT_DELAY)
            })
            .event_callback(move |event| {
                let counters = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            counters.reconnects.fetch_add(1, Ordering::Relaxed);
                            tracing::info!("NATS: connected again");
                        }
                        async_nats::Event::Disconnected => tracing::warn!("NATS: disconnected"),
                        async_nats::Event::SlowConsumer(sid) => {
                            counters.slow_consumer_drops.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                sid,
                                "NATS: a subscription fell behind; messages dropped"
                            );
                        }
                        other => tracing::info!(event = %other, "NATS"),
                    }
                }
            })
            .connect(options.url.as_str())
            .await
            .map_err(|source| BusError::Connect {
                url: options.url.clone(),
                source,
            })?;
        tracing::info!(url = %options.url, max_payload = client.max_payload(), "connected to NATS");
        Ok(NatsBus {
            jetstream: jetstream::new(client.clone()),
            client,
            chunker: Mutex::new(Chunker::new(rand::random())),
            large: tokio::sync::Mutex::new(()),
            counters,
            max_message: options.max_message.max(1),
            log_stream: if options.log_stream.is_empty() {
                DEFAULT_LOG_STREAM.to_owned()
            } else {
                options.log_stream.clone()
            },
            log_subjects: options.log_subjects.clone(),
            log: tokio::sync::OnceCell::new(),
        })
    }

    /// The log's stream, made (or found) on first use: file storage, the last
    /// [`KEPT_PER_SUBJECT`] entries of each subject, for a day.
    async fn log(&self) -> Result<&jetstream::stream::Stream, BusError> {
        self.log
            .get_or_try_init(|| async {
                self.jetstream
                    .get_or_create_stream(jetstream::stream::Config {
                        name: self.log_stream.clone(),
                        subjects: vec![self.log_subjects.clone()],
                        max_messages_per_subject: KEPT_PER_SUBJECT as i64,
                        max_age: LOG_MAX_AGE,
                        storage: StorageType::File,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| log_error("creating the stream", &self.log_subjects, e))
            })
            .await
    }

    /// The sequence of `subject`'s last entry in the log (0: none).
    async fn last(&self, subject: &str) -> Result<u64, BusError> {
        match self
            .log()
            .await?
            .get_last_raw_message_by_subject(subject)
            .await
        {
            Ok(message) => Ok(message.sequence),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(log_error("last", subject, e)),
        }
    }

    /// Waits until the server has processed everything sent before (a server reads a
    /// connection in order): a request nobody answers comes back as "no responders".
    /// `flush` alone only empties the client's write buffer.
    async fn round_trip(&self) {
        let probe = format!("_videocall.sync.{:016x}", rand::random::<u64>());
        match tokio::time::timeout(
            Duration::from_secs(2),
            self.client.request(probe, Bytes::new()),
        )
        .await
        {
            Ok(Err(error)) if error.kind() == async_nats::RequestErrorKind::NoResponders => {}
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::debug!(%error, "NATS: round trip after subscribing"),
            Err(_) => tracing::debug!("NATS: no answer to the round trip after subscribing"),
        }
    }

    /// The server's largest message payload.
    pub fn max_payload(&self) -> usize {
        self.client.max_payload()
    }
}

impl Bus for NatsBus {
    fn publish(&self, subject: String, payload: Bytes) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            check_subject(&subject)?;
            let max_payload = self.client.max_payload();
            let large = payload.len() + crate::chunk::HEADER_BYTES > max_payload;
            let _order = if large {
                Some(self.large.lock().await)
            } else {
                None
            };
            let chunks = self
                .chunker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .split(&payload, max_payload, self.max_message)?;
            // A `Subject` clones by reference count: no allocation per chunk.
            let wire_subject = async_nats::Subject::from(subject);
            for chunk in chunks {
                self.client
                    .publish(wire_subject.clone(), chunk)
                    .await
                    .map_err(|source| BusError::Publish {
                        subject: wire_subject.to_string(),
                        source,
                    })?;
            }
            self.counters.sent(payload.len());
            Ok(())
        })
    }

    fn subscribe(&self, subject: String) -> BoxFuture<'_, Result<Subscription, BusError>> {
        Box::pin(async move {
            check_pattern(&subject)?;
            let subscriber = self
                .client
                .subscribe(subject.clone())
                .await
                .map_err(|source| BusError::Subscribe {
                    subject: subject.clone(),
                    source,
                })?;
            self.round_trip().await;
            let counters = self.counters.clone();
            let mut reassembler = Reassembler::new(self.max_message);
            let messages = subscriber.filter_map(move |message| {
                let out = match reassembler.accept(message.payload) {
                    Reassembled::Whole(payload) => {
                        counters.received(payload.len());
                        Some(BusMessage {
                            subject: message.subject.to_string(),
                            payload,
                        })
                    }
                    Reassembled::Pending => None,
                    Reassembled::Dropped(cause) => {
                        counters.incomplete.fetch_add(1, Ordering::Relaxed);
                        if cause == DropCause::Malformed {
                            tracing::debug!(subject = %message.subject, "NATS: a message not of this bus's format");
                        }
                        None
                    }
                };
                std::future::ready(out)
            });
            Ok(Subscription::new(messages))
        })
    }

    fn append(
        &self,
        subject: String,
        expect_last: Option<u64>,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<Appended, BusError>> {
        Box::pin(async move {
            check_subject(&subject)?;
            if payload.len() > self.client.max_payload() {
                return Err(BusError::TooLarge {
                    size: payload.len(),
                    max: self.client.max_payload(),
                });
            }
            self.log().await?;
            let size = payload.len();
            let mut message = PublishMessage::build().payload(payload);
            if let Some(last) = expect_last {
                message = message.expected_last_subject_sequence(last);
            }
            let ack = self
                .jetstream
                .send_publish(subject.clone(), message)
                .await
                .map_err(|e| log_error("append", &subject, e))?;
            match ack.await {
                Ok(ack) => {
                    self.counters.sent(size);
                    Ok(Appended::At(ack.sequence))
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    Ok(Appended::Conflict {
                        last: self.last(&subject).await?,
                    })
                }
                Err(e) => Err(log_error("append", &subject, e)),
            }
        })
    }

    fn follow(&self, pattern: String) -> BoxFuture<'_, Result<LogFollow, BusError>> {
        Box::pin(async move {
            check_pattern(&pattern)?;
            let consumer = self
                .log()
                .await?
                .create_consumer(OrderedConfig {
                    filter_subject: pattern.clone(),
                    deliver_policy: DeliverPolicy::LastPerSubject,
                    ..Default::default()
                })
                .await
                .map_err(|e| log_error("follow", &pattern, e))?;
            let messages = consumer
                .messages()
                .await
                .map_err(|e| log_error("follow", &pattern, e))?;
            let counters = self.counters.clone();
            let entries = messages.filter_map(move |message| {
                let entry = match message {
                    Ok(message) => match message.info() {
                        Ok(info) => {
                            counters.received(message.payload.len());
                            Some(LogEntry {
                                subject: message.subject.to_string(),
                                sequence: info.stream_sequence,
                                payload: message.payload.clone(),
                            })
                        }
                        Err(error) => {
                            tracing::warn!(%error, "NATS: a log entry without its sequence");
                            None
                        }
                    },
                    Err(error) => {
                        tracing::warn!(%error, "NATS: following the log");
                        None
                    }
                };
                std::future::ready(entry)
            });
            Ok(LogFollow::new(entries))
        })
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn counters(&self) -> Arc<BusCounters> {
        self.counters.clone()
    }
}
