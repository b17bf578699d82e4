//! Tells the integration tests, at build time, which real servers they can use, so that a test
//! whose server is missing is reported by `cargo test` as ignored (with the reason) instead of
//! passing without having run. `cargo test` rebuilds when these settings change.

use std::path::Path;

const POSTGRES_URL: &str = "GUESTBRIDGE_TEST_POSTGRES_URL";
const REQUIRE_BROWSER: &str = "GUESTBRIDGE_REQUIRE_BROWSER";
const BROWSER_PARTS: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromedriver"];
const REQUIRE_NGINX: &str = "GUESTBRIDGE_REQUIRE_NGINX";
const NGINX: &str = "/usr/sbin/nginx";
const REQUIRE_OIDC_RP: &str = "GUESTBRIDGE_REQUIRE_OIDC_RP";
/// The relying-party library the OIDC provider test drives (`npm ci --prefix tests/oidc_rp`).
const OIDC_RP: &str = "tests/oidc_rp/node_modules/openid-client/package.json";
const REQUIRE_OIDC_PROVIDER: &str = "GUESTBRIDGE_REQUIRE_OIDC";
/// The identity provider the admin SSO test runs (`npm ci --prefix tests/oidc_provider`).
const OIDC_PROVIDER: &str = "tests/oidc_provider/node_modules/oidc-provider/package.json";

fn main() {
    println!("cargo:rustc-check-cfg=cfg(gb_postgres)");
    println!("cargo:rustc-check-cfg=cfg(gb_browser)");
    println!("cargo:rustc-check-cfg=cfg(gb_sqlite3_shell)");
    println!("cargo:rustc-check-cfg=cfg(gb_pg_dump)");
    println!("cargo:rustc-check-cfg=cfg(gb_nginx)");
    println!("cargo:rustc-check-cfg=cfg(gb_oidc_rp)");
    println!("cargo:rustc-check-cfg=cfg(gb_oidc_provider)");
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-env-changed={POSTGRES_URL}");
    println!("cargo:rerun-if-env-changed={REQUIRE_BROWSER}");
    println!("cargo:rerun-if-env-changed={REQUIRE_NGINX}");
    println!("cargo:rerun-if-env-changed={REQUIRE_OIDC_RP}");
    // Installing the relying party's packages changes this folder (it always exists).
    println!("cargo:rerun-if-changed=tests/oidc_rp");
    println!("cargo:rerun-if-env-changed={REQUIRE_OIDC_PROVIDER}");
    println!("cargo:rerun-if-changed=tests/oidc_provider");
    // Installing or removing a tool changes its directory; only existing paths are watched,
    // as a missing one would make every build rerun this script.
    let mut dirs: Vec<std::path::PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/bin".into());
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    if std::env::var(POSTGRES_URL).is_ok_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=gb_postgres");
    }
    if on_path("sqlite3") {
        println!("cargo:rustc-cfg=gb_sqlite3_shell");
    }
    if on_path("pg_dump") && on_path("pg_restore") {
        println!("cargo:rustc-cfg=gb_pg_dump");
    }
    // Where the browser is required (CI), the test is never ignored: it runs and fails loudly
    // if Chromium is missing.
    let required = std::env::var(REQUIRE_BROWSER).is_ok_and(|v| v == "1");
    if required || BROWSER_PARTS.iter().all(|p| Path::new(p).exists()) {
        println!("cargo:rustc-cfg=gb_browser");
    }
    if std::env::var(REQUIRE_NGINX).is_ok_and(|v| v == "1") || Path::new(NGINX).exists() {
        println!("cargo:rustc-cfg=gb_nginx");
    }
    let rp_required = std::env::var(REQUIRE_OIDC_RP).is_ok_and(|v| v == "1");
    if rp_required || (Path::new(OIDC_RP).exists() && on_path("node")) {
        println!("cargo:rustc-cfg=gb_oidc_rp");
    }
    let provider_required = std::env::var(REQUIRE_OIDC_PROVIDER).is_ok_and(|v| v == "1");
    if provider_required || (Path::new(OIDC_PROVIDER).exists() && on_path("node")) {
        println!("cargo:rustc-cfg=gb_oidc_provider");
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}
