//! gRPC statuses for store errors: a leaf, so the services and the session checks in
//! `auth` map errors the same way without importing each other.

use tonic::Status;

use crate::store::StoreError;

/// The gRPC status for a store error. Database failures are logged here and reported
/// without their details.
pub fn store_status(error: StoreError) -> Status {
    match error {
        StoreError::AlreadyExists(what) => Status::already_exists(format!("{what} already exists")),
        StoreError::NotFound(what) => Status::not_found(format!("{what} not found")),
        StoreError::Full(id) => Status::resource_exhausted(format!("meeting {id} is full")),
        StoreError::Ended(id) => Status::failed_precondition(format!("meeting {id} has ended")),
        StoreError::NoRelay => Status::unavailable(
            "no relay is available: none has a fresh heartbeat, or all are draining or full",
        ),
        StoreError::UnsupportedUrl(_) | StoreError::Database(_) | StoreError::Migrate(_) => {
            tracing::error!(%error, "database error");
            Status::unavailable("the database is unavailable; retry shortly")
        }
    }
}
