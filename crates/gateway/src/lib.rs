//! gateway: the enterprise-facing HTTP API of bankdirect and the workers
//! behind it.
//!
//! An ERP sees one API here — accounts, balances, and (in later issues)
//! statements, payments and events — whatever protocols the banks behind it
//! speak. This crate owns the API conventions (problem+json errors, opaque
//! cursors, decimal-string amounts, `X-Request-ID`), authentication (OAuth
//! client credentials issuing EdDSA JWTs), configuration, and the workers.
//!
//! Layout:
//! - [`config`]: the TOML configuration and its validation;
//! - [`auth`]: scopes, client registry, token issue and verification;
//! - [`extract`]: the authenticated [`extract::Caller`] and query extractors;
//! - [`problem`]: the one mapping from errors to problem+json;
//! - [`oauth`]: `/oauth/token` and the JWKS;
//! - [`routes`]: `/v1` banks, accounts, balances;
//! - [`ops`]: health, readiness, metrics, OpenAPI and docs;
//! - [`banking`]: connectors, per-bank limits, health, balance refresh worker;
//! - [`statements`]: statement sync (dedupe, pending → booked, continuity) and its worker;
//! - [`transactions`]: transaction pages, the change feed, signed cursors;
//! - [`flight`]: single-flight runs per key;
//! - [`hardening`]: rate limits, request shape limits, security headers, CORS;
//! - [`webhooks`]: webhook registration, deliveries and re-drive;
//! - [`webhook_delivery`]: the worker that fans events out and delivers them, signed;
//! - [`audit`]: the audit chain's checkpoint key, its chainer worker and `GET /v1/audit`.
//!
//! [`App::build`] wires everything from a [`config::Config`]; [`App::serve`]
//! runs it on a listener until a shutdown signal.

pub mod approvals;
pub mod audit;
pub mod auth;
pub mod balance_cache;
pub mod banking;
pub mod config;
pub mod dispatch;
pub mod edge;
pub mod entry_cache;
pub mod exchanges;
pub mod extract;
pub mod failpoints;
pub mod flight;
pub mod hardening;
pub mod oauth;
pub mod ops;
pub mod payment_batches;
pub mod payment_intake;
pub mod payments;
pub mod problem;
pub mod resolutions;
pub mod routes;
pub mod statements;
pub mod timefmt;
pub mod tls;
pub mod transactions;
pub mod webhook_delivery;
pub mod webhooks;

use std::{sync::Arc, time::Duration};

use axum::{
    middleware,
    routing::{get, post},
    Router,
};
use domain::{Clock, SystemClock};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::{net::TcpListener, sync::watch};
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    auth::{ClientRegistry, RegisteredClient, TokenService, TokenSettings},
    banking::BankDirectory,
    config::Config,
};

/// Everything a handler may need. Cheap to clone: one `Arc`, cloned for
/// every request by axum (the fields are reached through `Deref`).
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppParts {
    pub config: Arc<Config>,
    pub store: Arc<dyn store::Store>,
    pub clock: Arc<dyn Clock>,
    pub tokens: Arc<TokenService>,
    pub clients: Arc<ClientRegistry>,
    pub directory: Arc<BankDirectory>,
    pub statements: Arc<statements::StatementSync>,
    /// Accounts' entries in memory, for transaction pages.
    pub entry_cache: Arc<entry_cache::EntryCache>,
    pub cursors: Arc<transactions::CursorSigner>,
    /// Wakes the dispatcher when a payment is ready to send.
    pub dispatcher_wake: Arc<tokio::sync::Notify>,
    pub payment_workers: Arc<dispatch::PaymentWorkers>,
    /// Fans events out to webhooks and delivers them.
    pub webhooks: Arc<webhook_delivery::WebhookWorker>,
    pub metrics: Option<PrometheusHandle>,
    /// The last accepted TOTP step of each person (replays refused).
    pub totp_steps: oauth::TotpSteps,
    /// The data key webhook secrets are sealed under in the database.
    pub webhook_secret_key: Arc<crypto::sealed::MasterKey>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "bankdirect",
        description = "One API for an enterprise's bank accounts: accounts, balances and transaction details (payments next). Errors are RFC 9457 problem+json with a stable `code`."
    ),
    paths(
        oauth::token,
        oauth::jwks,
        routes::list_banks,
        routes::list_accounts,
        routes::get_account,
        routes::get_balance,
        routes::refresh_balance,
        routes::list_balances,
        transactions::list_transactions,
        transactions::refresh_transactions,
        transactions::change_feed,
        transactions::continuity_breaks,
        payments::create_payment,
        payments::get_payment,
        payments::list_payments,
        payments::cancel_payment,
        resolutions::resolve_payment,
        resolutions::resolve_chunk,
        approvals::approve_payment,
        approvals::decline_payment,
        payment_batches::create_batch,
        payment_batches::get_batch,
        payment_batches::list_batches,
        payment_batches::cancel_batch,
        approvals::approve_batch,
        approvals::decline_batch,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::get_webhook,
        webhooks::delete_webhook,
        webhooks::list_deliveries,
        webhooks::redrive_delivery,
        webhooks::redrive_webhook,
        audit::list_audit,
        exchanges::get_exchange,
        ops::healthz,
        ops::readyz,
        ops::metrics_endpoint,
        ops::openapi_json,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "OAuth 2.0 client credentials"),
        (name = "banks", description = "Configured banks and their health"),
        (name = "accounts", description = "Accounts the caller is entitled to"),
        (name = "balances", description = "Stored balance snapshots and explicit refresh"),
        (name = "transactions", description = "Transaction details: stable pages, change feed, sync, continuity"),
        (name = "payments", description = "Payments: never lost, never paid twice"),
        (name = "payment-batches", description = "Supplier and payroll (代发) batches: one debtor, one approval, chunks of the bank's batch size, status per item"),
        (name = "webhooks", description = "Events pushed to your endpoint, signed, per object in order, re-drivable"),
        (name = "audit", description = "Who did what: audit records with their place in the signed hash chain"),
        (name = "operations", description = "Health, readiness, metrics, API description"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("keys: {0}")]
    Crypto(#[from] crypto::CryptoError),
    #[error("auth: {0}")]
    Auth(#[from] auth::AuthError),
    #[error("bank connection: {0}")]
    Bank(#[from] banks::ConnectError),
    #[error("listening socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("webhook HTTP client: {0}")]
    WebhookClient(#[from] reqwest::Error),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
}

/// A built gateway: state, router, and the background workers to start.
pub struct App {
    pub state: AppState,
    shutdown_tx: watch::Sender<bool>,
    /// The background workers, awaited on shutdown so that no round is cut
    /// off between a bank's answer and its commit when it can be helped.
    workers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// How long a graceful shutdown waits for the workers' current rounds.
const WORKER_DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Options that are not configuration: the clock (tests inject one) and
/// whether to run the background workers.
pub struct BuildOptions {
    pub clock: Arc<dyn Clock>,
    pub run_workers: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            clock: Arc::new(SystemClock),
            run_workers: true,
        }
    }
}

impl App {
    /// Opens the store (migrating it), loads or creates the keys, and builds
    /// the connectors. Nothing is listening yet.
    pub async fn build(config: Config, opts: BuildOptions) -> Result<App, StartError> {
        std::fs::create_dir_all(&config.data_dir)?;
        // The checkpoint key lives in a file, never in the database (DESIGN.md).
        let checkpoint_key = Arc::new(audit::CheckpointKey::load_or_create(
            &config.data_path(&config.audit.checkpoint_key_file),
        )?);
        let store_opts = store::StoreOptions {
            migrate: true,
            read_pool_size: config.database.read_pool_size,
            pg_pool_size: config.database.pg_pool_size,
            busy_timeout_ms: config.database.busy_timeout_ms,
            max_batch: config.database.write_max_batch,
            audit_chain: store::audit::AuditChainOptions {
                enabled: config.audit.chain_enabled,
                checkpoint_every_records: config.audit.checkpoint_every_records,
                checkpoint_every_s: config.audit.checkpoint_every_s,
                signer: Some(checkpoint_key),
                clock: opts.clock.clone(),
            },
            ..store::StoreOptions::default()
        };
        let store = store::open(&config.database_url(), &store_opts).await?;
        let signing_key =
            crypto::Ed25519Key::load_or_create(&config.data_path(&config.auth.signing_key_file))?;
        let hasher = crypto::KeyedHasher::load_or_create(
            &config.data_path(&config.auth.secret_hash_key_file),
        )?;
        let tokens = TokenService::new(
            &signing_key,
            TokenSettings {
                issuer: config.auth.issuer.clone(),
                audience: config.auth.audience.clone(),
                ttl_s: config.auth.token_ttl_s,
                leeway_s: config.auth.leeway_s,
                cache_capacity: config.auth.token_cache_capacity,
            },
        )?;
        let clients = ClientRegistry::try_new(
            hasher,
            config
                .clients
                .iter()
                .map(|c| RegisteredClient {
                    id: c.id.to_string(),
                    secret_hash: c.secret_hash.clone(),
                    scopes: c.scopes.clone(),
                    accounts: c.accounts.clone(),
                })
                .collect(),
        )?;
        let cursor_key = crypto::KeyedHasher::load_or_create(
            &config.data_path(&config.statements.cursor_key_file),
        )?;
        let directory = Arc::new(BankDirectory::build(
            &config,
            store.clone(),
            opts.clock.clone(),
        )?);
        let entry_cache = Arc::new(entry_cache::EntryCache::new(
            store.clone(),
            Duration::from_millis(config.statements.read_cache_ttl_ms),
            config.statements.read_cache_max_entries,
        ));
        let statements = Arc::new(statements::StatementSync::new(
            &config,
            directory.clone(),
            store.clone(),
            opts.clock.clone(),
            entry_cache.clone(),
        ));
        let dispatcher_wake = Arc::new(tokio::sync::Notify::new());
        let payment_workers = Arc::new(dispatch::PaymentWorkers::new(
            &config,
            directory.clone(),
            store.clone(),
            opts.clock.clone(),
            dispatcher_wake.clone(),
        ));
        let clients = Arc::new(clients);
        let webhook_secret_key = Arc::new(crypto::sealed::MasterKey::load_or_create(
            &config.data_path(&config.webhooks.secret_key_file),
        )?);
        let webhooks = Arc::new(webhook_delivery::WebhookWorker::new(
            &config.webhooks,
            store.clone(),
            opts.clock.clone(),
            clients.clone(),
            &config.users,
            webhook_secret_key.clone(),
        )?);
        let (shutdown_tx, _) = watch::channel(false);
        let state = AppState(Arc::new(AppParts {
            config: Arc::new(config),
            store,
            clock: opts.clock,
            tokens: Arc::new(tokens),
            clients,
            directory,
            statements,
            entry_cache,
            cursors: Arc::new(transactions::CursorSigner::new(cursor_key)),
            dispatcher_wake,
            payment_workers,
            webhooks,
            metrics: ops::metrics_handle(),
            totp_steps: oauth::TotpSteps::default(),
            webhook_secret_key,
        }));
        let app = App {
            state,
            shutdown_tx,
            workers: std::sync::Mutex::new(Vec::new()),
        };
        if opts.run_workers {
            app.start_workers();
        }
        Ok(app)
    }

    fn start_workers(&self) {
        let mut handles = Vec::new();
        if self.state.config.audit.chain_enabled {
            handles.push(tokio::spawn(audit::run_chainer(
                self.state.store.clone(),
                Duration::from_millis(self.state.config.audit.chain_interval_ms),
                self.shutdown_tx.subscribe(),
            )));
        }
        if self.state.config.balances.worker_enabled {
            handles.push(tokio::spawn(banking::balance_worker(
                self.state.directory.clone(),
                Duration::from_secs(self.state.config.balances.refresh_interval_s),
                self.shutdown_tx.subscribe(),
            )));
        }
        if self.state.config.statements.worker_enabled {
            handles.push(tokio::spawn(statements::statement_worker(
                self.state.statements.clone(),
                Duration::from_secs(self.state.config.statements.sync_interval_s),
                self.shutdown_tx.subscribe(),
            )));
        }
        if self.state.config.payments.workers_enabled {
            handles.push(tokio::spawn(dispatch::run_payment_workers(
                self.state.payment_workers.clone(),
                self.shutdown_tx.subscribe(),
            )));
        }
        if self.state.config.webhooks.worker_enabled {
            handles.push(tokio::spawn(webhook_delivery::run_webhook_worker(
                self.state.webhooks.clone(),
                self.shutdown_tx.subscribe(),
            )));
        }
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(handles);
        if let Some(handle) = self.state.metrics.clone() {
            let mut stop = self.shutdown_tx.subscribe();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => handle.run_upkeep(),
                        _ = stop.changed() => return,
                    }
                }
            });
        }
    }

    /// The router with every route and middleware.
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` resolves, then stops the workers
    /// and lets in-flight requests finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let router = self.router();
        let tx = self.shutdown_tx.clone();
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = tx.send(true);
        })
        .await?;
        self.drain().await;
        Ok(())
    }

    /// Serves over TLS (`[server.tls]`) on `listener` until `shutdown`
    /// resolves, reloading the certificate when its files change, then stops
    /// like [`App::serve`]. An unusable certificate or key fails the start,
    /// naming the file.
    pub async fn serve_tls(
        self,
        listener: TcpListener,
        tls_config: &config::ServerTlsConfig,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let cert = Arc::new(tls::ReloadingCert::load(tls_config)?);
        let acceptor = tls::acceptor(cert.clone())?;
        let reloads = tokio::spawn(tls::watch(cert, self.shutdown_tx.subscribe()));
        let router = self.router();
        let tx = self.shutdown_tx.clone();
        tls::serve(listener, acceptor, router, async move {
            shutdown.await;
            let _ = tx.send(true);
        })
        .await;
        self.drain().await;
        let _ = reloads.await;
        Ok(())
    }

    /// Stops the workers and closes the store after the listener closed.
    async fn drain(&self) {
        let _ = self.shutdown_tx.send(true);
        // Let the workers finish the round they are in (a bank call already
        // sent is answered and committed), bounded: a stuck one is left to
        // the reaper of the next start, which is what a crash would do too.
        let handles: Vec<_> =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        if tokio::time::timeout(WORKER_DRAIN_TIMEOUT, futures::future::join_all(handles))
            .await
            .is_err()
        {
            tracing::warn!("workers did not stop within {WORKER_DRAIN_TIMEOUT:?}; leaving them to the next start");
        }
        self.state.store.close().await;
    }
}

/// Builds the router for a state.
pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_millis(state.config.server.request_timeout_ms);
    let max_body = state.config.server.max_body_bytes;
    let guard = Arc::new(hardening::Guard::new(state.clone()));
    let docs = Router::<AppState>::new()
        .merge(SwaggerUi::new("/docs").url("/docs/openapi.json", ApiDoc::openapi()))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            ops::docs_gate,
        ));
    let api = Router::new()
        .route(
            "/oauth/token",
            post(oauth::token).layer(middleware::from_fn_with_state(
                guard.clone(),
                hardening::throttle_token_failures,
            )),
        )
        .route("/.well-known/jwks.json", get(oauth::jwks))
        .route("/v1/banks", get(routes::list_banks))
        .route("/v1/accounts", get(routes::list_accounts))
        .route("/v1/accounts/{id}", get(routes::get_account))
        .route("/v1/accounts/{id}/balance", get(routes::get_balance))
        .route(
            "/v1/accounts/{id}/balance:refresh",
            post(routes::refresh_balance),
        )
        .route("/v1/balances", get(routes::list_balances))
        .route(
            "/v1/accounts/{id}/transactions",
            get(transactions::list_transactions),
        )
        .route(
            "/v1/accounts/{id}/transactions:refresh",
            post(transactions::refresh_transactions),
        )
        .route(
            "/v1/accounts/{id}/continuity-breaks",
            get(transactions::continuity_breaks),
        )
        .route("/v1/transactions", get(transactions::change_feed))
        .route(
            "/v1/payments",
            post(payments::create_payment).get(payments::list_payments),
        )
        .route("/v1/payments/{id}", get(payments::get_payment))
        .route("/v1/payments/{id}/cancel", post(payments::cancel_payment))
        .route(
            "/v1/payments/{id}/approve",
            post(approvals::approve_payment),
        )
        .route(
            "/v1/payments/{id}/decline",
            post(approvals::decline_payment),
        )
        .route(
            "/v1/payments/{id}/resolve",
            post(resolutions::resolve_payment),
        )
        .route(
            "/v1/payment-batches/{id}/chunks/{chunk_no}/resolve",
            post(resolutions::resolve_chunk),
        )
        .route(
            "/v1/payment-batches",
            post(payment_batches::create_batch)
                .layer(axum::extract::DefaultBodyLimit::max(
                    state.config.payments.max_batch_body_bytes,
                ))
                .get(payment_batches::list_batches),
        )
        .route("/v1/payment-batches/{id}", get(payment_batches::get_batch))
        .route(
            "/v1/payment-batches/{id}/cancel",
            post(payment_batches::cancel_batch),
        )
        .route(
            "/v1/payment-batches/{id}/approve",
            post(approvals::approve_batch),
        )
        .route(
            "/v1/payment-batches/{id}/decline",
            post(approvals::decline_batch),
        )
        .route(
            "/v1/webhooks",
            post(webhooks::create_webhook).get(webhooks::list_webhooks),
        )
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get_webhook).delete(webhooks::delete_webhook),
        )
        .route(
            "/v1/webhooks/{id}/deliveries",
            get(webhooks::list_deliveries),
        )
        .route(
            "/v1/webhooks/{id}/deliveries/{delivery_id}/redrive",
            post(webhooks::redrive_delivery),
        )
        .route("/v1/webhooks/{id}/redrive", post(webhooks::redrive_webhook))
        .route("/v1/audit", get(audit::list_audit))
        .route("/v1/bank-exchanges/{id}", get(exchanges::get_exchange))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics_endpoint))
        .route("/openapi.json", get(ops::openapi_json))
        .merge(docs)
        .fallback(ops::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    let headers = &state.config.server.headers;
    let over_tls = headers.hsts || state.config.server.tls.is_some();
    api.layer(edge::EdgeLayer::new(
        guard,
        hardening::HeaderPolicy::new(over_tls.then_some(headers.hsts_max_age_s)),
        hardening::cors_layer(&state.config.server.cors),
        timeout,
        max_body,
    ))
}

async fn method_not_allowed(req: axum::extract::Request) -> problem::ApiError {
    problem::ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}; see /docs",
            req.method(),
            req.uri().path()
        ),
    )
}
