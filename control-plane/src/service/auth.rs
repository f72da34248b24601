//! `AuthService`: users, login sessions, API keys.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use videocall_control_api::v1::auth_service_server::AuthService;
use videocall_control_api::v1::*;

use super::{peer_key, store_status, ControlPlane};
use crate::auth::{
    authenticate, hash_password, open_session, random_hex, random_token, require, require_admin,
    sha256_hex, verify_password, CallerRole, Via,
};
use crate::store::{now_ms, ApiKeyRecord, UserRecord};
use crate::validate;

/// Longest ID token taken (bytes).
const MAX_ID_TOKEN: usize = 16 * 1024;

/// The auth service.
pub struct AuthApi(pub Arc<ControlPlane>);

fn user_to_api(user: &UserRecord) -> User {
    User {
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        role: CallerRole::parse(&user.role).to_api() as i32,
        created_at_ms: user.created_at_ms,
        picture_url: user.picture_url.clone(),
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<User>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let req = request.into_inner();
        validate::username("username", &req.username)?;
        validate::password("password", &req.password)?;
        validate::display_name("display_name", &req.display_name, false)?;
        let role = match Role::try_from(req.role) {
            Ok(Role::Unspecified) | Ok(Role::User) => CallerRole::User,
            Ok(Role::Admin) => CallerRole::Admin,
            _ => return Err(validate::invalid("role", "must be ROLE_USER or ROLE_ADMIN")),
        };
        let admin = require_admin(caller)?;
        let display_name = if req.display_name.trim().is_empty() {
            req.username.clone()
        } else {
            req.display_name.trim().to_owned()
        };
        let user = UserRecord {
            username: req.username,
            display_name,
            password_hash: hash_password(req.password).await?,
            role: role.as_str().into(),
            created_at_ms: now_ms(),
            picture_url: String::new(),
        };
        self.0
            .store
            .create_user(&user)
            .await
            .map_err(store_status)?;
        tracing::info!(user = %user.username, role = %user.role, by = %admin.name, "user created");
        Ok(Response::new(user_to_api(&user)))
    }

    async fn login(
        &self,
        request: Request<LoginRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        let peer = format!("peer:{}", peer_key(&request));
        let req = request.into_inner();
        validate::username("username", &req.username)?;
        if req.password.is_empty() || req.password.len() > validate::MAX_PASSWORD * 4 {
            return Err(validate::invalid("password", "is required"));
        }
        let limiter = &self.0.login_limiter;
        let user_key = format!("user:{}", req.username);
        if !limiter.allowed(&user_key) || !limiter.allowed_peer(&peer) {
            tracing::warn!(user = %req.username, %peer, "login rate-limited");
            return Err(Status::resource_exhausted(
                "too many failed logins; wait a minute and try again",
            ));
        }
        let user = self
            .0
            .store
            .user(&req.username)
            .await
            .map_err(store_status)?;
        let ok =
            verify_password(req.password, user.as_ref().map(|u| u.password_hash.clone())).await;
        let Some(user) = user.filter(|_| ok) else {
            limiter.failed(&user_key);
            limiter.failed(&peer);
            tracing::warn!(user = %req.username, %peer, "failed login");
            return Err(Status::unauthenticated("wrong username or password"));
        };
        limiter.succeeded(&user_key);
        let (token, expires_at_ms) = open_session(
            &self.0.store,
            &user.username,
            self.0.config.session_ttl_secs,
        )
        .await
        .map_err(store_status)?;
        Ok(Response::new(LoginResponse {
            session_token: token,
            expires_at_ms,
            user: Some(user_to_api(&user)),
        }))
    }

    async fn logout(
        &self,
        request: Request<LogoutRequest>,
    ) -> Result<Response<LogoutResponse>, Status> {
        let caller = require(authenticate(&self.0.store, request.metadata()).await?)?;
        match caller.via {
            Via::Session(hash) => {
                self.0
                    .store
                    .revoke_session(&hash)
                    .await
                    .map_err(store_status)?;
                Ok(Response::new(LogoutResponse {}))
            }
            Via::ApiKey(_) => Err(Status::failed_precondition(
                "API keys do not log out; an admin revokes them with RevokeApiKey",
            )),
        }
    }

    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<Principal>, Status> {
        let caller = require(authenticate(&self.0.store, request.metadata()).await?)?;
        let (display_name, picture_url) = match &caller.via {
            Via::Session(_) => match self
                .0
                .store
                .user(&caller.name)
                .await
                .map_err(store_status)?
            {
                Some(user) => (user.display_name, user.picture_url),
                None => (caller.name.clone(), String::new()),
            },
            Via::ApiKey(_) => (caller.name.clone(), String::new()),
        };
        Ok(Response::new(Principal {
            name: caller.name,
            role: caller.role.to_api() as i32,
            via: match caller.via {
                Via::Session(_) => "session".into(),
                Via::ApiKey(_) => "api_key".into(),
            },
            display_name,
            picture_url,
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<CreateApiKeyRequest>,
    ) -> Result<Response<CreateApiKeyResponse>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let req = request.into_inner();
        validate::lookup_id("name", &req.name)?;
        let role = Role::try_from(req.role)
            .ok()
            .and_then(CallerRole::from_api)
            .ok_or_else(|| {
                validate::invalid("role", "must be ROLE_USER, ROLE_ADMIN or ROLE_RELAY")
            })?;
        let admin = require_admin(caller)?;
        let key_id = format!("vk_{}", random_hex(8));
        let secret = random_token(32);
        let record = ApiKeyRecord {
            key_id: key_id.clone(),
            name: req.name,
            role: role.as_str().into(),
            secret_hash: sha256_hex(&secret),
        };
        self.0
            .store
            .create_api_key(&record, now_ms())
            .await
            .map_err(store_status)?;
        tracing::info!(key = %key_id, name = %record.name, role = %record.role, by = %admin.name, "API key created");
        Ok(Response::new(CreateApiKeyResponse { key_id, secret }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<RevokeApiKeyRequest>,
    ) -> Result<Response<RevokeApiKeyResponse>, Status> {
        let caller = authenticate(&self.0.store, request.metadata()).await?;
        let req = request.into_inner();
        validate::lookup_id("key_id", &req.key_id)?;
        let admin = require_admin(caller)?;
        self.0
            .store
            .revoke_api_key(&req.key_id)
            .await
            .map_err(store_status)?;
        tracing::info!(key = %req.key_id, by = %admin.name, "API key revoked");
        Ok(Response::new(RevokeApiKeyResponse {}))
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<RevokeUserSessionsRequest>,
    ) -> Result<Response<RevokeUserSessionsResponse>, Status> {
        let caller = require(authenticate(&self.0.store, request.metadata()).await?)?;
        let req = request.into_inner();
        validate::username("username", &req.username)?;
        let own_session = caller.name == req.username && matches!(caller.via, Via::Session(_));
        if !caller.is_admin() && !own_session {
            return Err(Status::permission_denied(
                "only an admin or the user themself may revoke sessions",
            ));
        }
        let revoked = self
            .0
            .store
            .revoke_user_sessions(&req.username)
            .await
            .map_err(store_status)?;
        Ok(Response::new(RevokeUserSessionsResponse {
            revoked: u32::try_from(revoked).unwrap_or(u32::MAX),
        }))
    }

    async fn sign_in_options(
        &self,
        _request: Request<SignInOptionsRequest>,
    ) -> Result<Response<SignInOptionsResponse>, Status> {
        let providers = self
            .0
            .oidc
            .iter()
            .map(|provider| {
                let settings = provider.settings();
                SignInProvider {
                    id: settings.id.clone(),
                    name: settings.name.clone(),
                    issuer: settings.issuer.clone(),
                    start_path: "/auth/oidc/start".into(),
                }
            })
            .collect();
        Ok(Response::new(SignInOptionsResponse {
            local_accounts: true,
            providers,
        }))
    }

    async fn sign_in_with_id_token(
        &self,
        request: Request<SignInWithIdTokenRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        let peer = format!("peer:{}", peer_key(&request));
        let req = request.into_inner();
        if req.id_token.is_empty() || req.id_token.len() > MAX_ID_TOKEN {
            return Err(validate::invalid(
                "id_token",
                format!("must be a JWT of 1 to {MAX_ID_TOKEN} bytes"),
            ));
        }
        let provider = self
            .0
            .oidc
            .as_ref()
            .filter(|provider| provider.settings().id == req.provider)
            .ok_or_else(|| {
                validate::invalid(
                    "provider",
                    format!("no sign-in provider {:?} is configured here", req.provider),
                )
            })?;
        let limiter = &self.0.login_limiter;
        if !limiter.allowed_peer(&peer) {
            tracing::warn!(%peer, "ID token sign-in rate-limited");
            return Err(Status::resource_exhausted(
                "too many failed sign-ins; wait a minute and try again",
            ));
        }
        let signed_in = async {
            let claims = provider.verify_id_token(&req.id_token).await?;
            crate::oidc::sign_in(
                &self.0.store,
                &provider.settings().policy,
                &claims,
                self.0.config.session_ttl_secs,
            )
            .await
        }
        .await
        .map_err(|error| {
            limiter.failed(&peer);
            tracing::warn!(%peer, %error, "ID token sign-in refused");
            error.to_status()
        })?;
        Ok(Response::new(LoginResponse {
            session_token: signed_in.session_token,
            expires_at_ms: signed_in.expires_at_ms,
            user: Some(user_to_api(&signed_in.user)),
        }))
    }
}
