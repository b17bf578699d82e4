//! Builds the HTTP application on a bound listener and runs it until a shutdown signal.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::edge::root_span::RedactedRootSpan;

use crate::app_state::AppState;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::request_metrics::Metrics;
use crate::services::Deps;
use crate::store::Db;

/// Load the mapping rules at start: invalid rules stop start-up with every error listed; a
/// missing folder means no rules yet (nobody becomes a guest), with a warning.
pub fn load_rules(dir: &std::path::Path) -> anyhow::Result<crate::mapping::RuleSet> {
    if !dir.exists() {
        tracing::warn!(dir = %dir.display(), "mappings folder not found: no mapping rules loaded");
        return Ok(crate::mapping::RuleSet::empty());
    }
    crate::mapping::load_dir(dir).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "setting mappings_dir (GUESTBRIDGE_MAPPINGS): invalid mapping rules: {}",
            list.join("; ")
        )
    })
}

/// Headers every response carries: no framing, no sniffing, no referrer (invitation links
/// carry a secret), and a CSP that allows only this origin's scripts (the console's action
/// buttons) and styles, and inline styles.
fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; img-src 'self' data: https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
}

/// Deliver queued mail when SMTP is configured; otherwise mail waits in the outbox.
pub fn smtp_sender(settings: &Settings) -> anyhow::Result<Option<crate::mail::smtp::SmtpSender>> {
    use secrecy::ExposeSecret;
    let Some(url) = &settings.smtp_url else {
        return Ok(None);
    };
    crate::mail::smtp::SmtpSender::new(
        url.expose_secret(),
        &settings.portal.mail_from,
        std::time::Duration::from_secs(30),
    )
    .map(Some)
    .map_err(|e| anyhow::anyhow!("setting smtp.url (GUESTBRIDGE_SMTP_URL): {e}"))
}

fn start_mail_sender(
    deps: &Deps,
    settings: &Settings,
) -> anyhow::Result<Option<Arc<crate::mail::smtp::SmtpSender>>> {
    let Some(sender) = smtp_sender(settings)? else {
        tracing::info!("no SMTP URL set: mail is kept in the outbox and not sent");
        return Ok(None);
    };
    let policy = crate::services::mail_sender::RetryPolicy {
        base_ms: settings.portal.mail_retry_base_ms,
        max_attempts: settings.portal.mail_max_attempts,
        lease_ms: settings.portal.mail_lease_ms,
    };
    let poll =
        std::time::Duration::from_millis(settings.portal.mail_retry_base_ms.clamp(100, 5_000));
    let sender = Arc::new(sender);
    crate::services::mail_sender::spawn(deps.clone(), sender.clone(), policy, poll);
    Ok(Some(sender))
}

/// Push guest changes to the configured targets.
fn start_sync_worker(deps: &Deps, settings: &Settings) -> anyhow::Result<()> {
    if settings.sync.targets.is_empty() {
        return Ok(());
    }
    let connectors = crate::connectors::build::build_connectors(&settings.sync, &deps.db)?;
    let policy = crate::services::sync_sender::SyncPolicy {
        base_ms: settings.sync.retry_base_ms,
        max_attempts: settings.sync.max_attempts,
        lease_ms: settings.sync.lease_ms,
    };
    let poll = std::time::Duration::from_millis(settings.sync.retry_base_ms.clamp(100, 5_000));
    crate::services::sync_sender::spawn(deps.clone(), Arc::new(connectors), policy, poll);
    Ok(())
}

/// A built, not yet running, instance.
pub struct Application {
    port: u16,
    server: Server,
    db: Db,
    state: web::Data<AppState>,
    /// The scheduled jobs of this instance, stopped when the server stops.
    scheduler: Option<tokio_cron_scheduler::JobScheduler>,
    /// The served certificate when TLS is native (reloaded on SIGHUP).
    tls: Option<Arc<crate::edge::tls::ReloadableCert>>,
}

impl Application {
    /// Connect, migrate and bind. Port 0 picks a free port (tests).
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Application> {
        let db = Db::connect(&settings.database).await?;
        db.migrate().await?;
        let listener = TcpListener::bind(settings.http.listen).with_context(|| {
            format!(
                "cannot listen on {} (setting http.listen / GUESTBRIDGE_LISTEN)",
                settings.http.listen
            )
        })?;
        let port = listener.local_addr()?.port();
        // Loaded before anything else starts, so a bad file stops start-up with its name.
        let tls = match &settings.http.edge.tls {
            Some(files) => Some(crate::edge::tls::ReloadableCert::load(files)?),
            None => None,
        };
        let mut settings = settings;
        if settings.http.listen.port() == 0 && settings.http.public_url.ends_with(":0") {
            let scheme = if tls.is_some() { "https" } else { "http" };
            settings.http.public_url = format!("{scheme}://{}:{port}", settings.http.listen.ip());
        }
        let proxies = web::Data::new(settings.http.edge.proxies.clone());
        let rules = load_rules(&settings.mappings_dir)?;
        let portal = crate::services::portal_env::PortalEnv::from_settings(&settings)?;
        for problem in
            crate::services::portal_env::missing_invitation_variants(&rules, &portal.templates)
        {
            tracing::warn!(%problem, "mapping rule names a missing mail template; its guests get the standard invitation");
        }
        let pages = crate::portal_pages::Pages::new().context("loading the portal pages")?;
        let admin_sso = match &settings.admin_sso {
            Some(sso) => Some(Arc::new(
                crate::auth::oidc_client::OidcClient::new(sso.client_settings())
                    .context("setting admin_sso (GUESTBRIDGE_ADMIN_OIDC_ISSUER)")?,
            )),
            None => None,
        };
        let state = web::Data::new(AppState {
            pages,
            imports: Default::default(),
            deps: Deps::new(db.clone(), clock, rules, portal),
            settings: Arc::new(settings),
            metrics: Metrics::new().context("registering metrics")?,
            admin_sso,
        });
        crate::services::signing::ensure_key(&state.deps)
            .await
            .map_err(|e| anyhow::anyhow!("preparing the app-launch signing key: {e}"))?;
        crate::services::import::at_server_start(&db)
            .await
            .map_err(|e| anyhow::anyhow!("cleaning up interrupted imports: {e}"))?;
        crate::services::rules_watch::adopt_at_start(&state.deps)
            .await
            .map_err(|e| anyhow::anyhow!("sharing the mapping rules: {e}"))?;
        crate::services::rules_watch::spawn(
            state.deps.clone(),
            state.settings.database.url.clone(),
            std::time::Duration::from_millis(state.settings.rules_poll_ms),
        );
        let smtp = start_mail_sender(&state.deps, &state.settings)?;
        start_sync_worker(&state.deps, &state.settings)?;
        let scheduler = if state.settings.jobs_enabled {
            Some(
                crate::jobs::start_scheduler(state.deps.clone(), state.settings.clone(), smtp)
                    .await?,
            )
        } else {
            None
        };
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(crate::metrics::record))
                .wrap(security_headers())
                .wrap(TracingLogger::<RedactedRootSpan>::new())
                .app_data(state.clone())
                .app_data(proxies.clone())
                .route("/healthz", web::get().to(crate::health::get_healthz))
                .route("/readyz", web::get().to(crate::health::get_readyz))
                .route("/metrics", web::get().to(crate::metrics::get_metrics))
                .service(
                    web::scope("/api/v1")
                        .wrap(from_fn(crate::admin::error_shape::with_request_id))
                        .configure(crate::admin::configure),
                )
                // Before the portal, whose `/` it replaces with the landing page.
                .configure(crate::console::configure)
                .configure(crate::portal::configure)
                .service(crate::scim::scope())
                // Outermost, so that metrics and logs see the path that was routed.
                .wrap(from_fn(crate::scim::normalize_path))
        });
        let server = match &tls {
            Some(cert) => server.listen_rustls_0_23(listener, cert.server_config()?)?,
            None => server.listen(listener)?,
        }
        .shutdown_timeout(10)
        .run();
        Ok(Application {
            port,
            server,
            db,
            state: app_state,
            scheduler,
            tls,
        })
    }

    /// Read the TLS certificate and key files again (SIGHUP); without native TLS, nothing.
    pub fn tls_reloader(&self) -> Option<Arc<crate::edge::tls::ReloadableCert>> {
        self.tls.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The services of this instance (the same the HTTP handlers use).
    pub fn deps(&self) -> Deps {
        self.state.deps.clone()
    }

    /// Serve until SIGINT/SIGTERM, then drain requests and close the pool.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await?;
        // No job starts once the server has stopped; a run in progress ends with the pool
        // (its lease expires, and the next run takes up what it left).
        if let Some(mut scheduler) = self.scheduler {
            if let Err(e) = scheduler.shutdown().await {
                tracing::warn!(error = %e, "stopping the job scheduler");
            }
        }
        self.db.close().await;
        Ok(())
    }
}
