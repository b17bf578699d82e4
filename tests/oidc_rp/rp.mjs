// A relying party built only from openid-client (a maintained, certified OpenID Connect client
// library), driven by the Rust test over stdin/stdout: one JSON command per line in, one JSON
// answer per line out. The test holds the guest's browser session; this side does everything
// an app does: discovery, the authorization URL with PKCE, state and nonce, the callback with
// ID token validation, userinfo and refresh.
import * as client from 'openid-client';
import readline from 'node:readline';

const { ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI } = process.env;

let config;
let pending = {};

function answer(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function failure(e) {
  return { ok: false, error: e.error || e.code || e.name, message: String(e.message || e), cause: e.cause ? String(e.cause.error || e.cause) : undefined };
}

async function handle(cmd) {
  switch (cmd.op) {
    case 'discover': {
      const auth = CLIENT_SECRET ? client.ClientSecretBasic(CLIENT_SECRET) : client.None();
      config = await client.discovery(
        new URL(ISSUER),
        CLIENT_ID,
        { id_token_signed_response_alg: 'EdDSA' },
        auth,
        { execute: [client.allowInsecureRequests] },
      );
      const m = config.serverMetadata();
      return { ok: true, issuer: m.issuer, token_endpoint: m.token_endpoint };
    }
    case 'authorize_url': {
      const verifier = client.randomPKCECodeVerifier();
      const params = {
        redirect_uri: REDIRECT_URI,
        scope: cmd.scope || 'openid email profile roles offline_access',
        state: client.randomState(),
        nonce: client.randomNonce(),
      };
      if (cmd.pkce !== false) {
        params.code_challenge = await client.calculatePKCECodeChallenge(verifier);
        params.code_challenge_method = 'S256';
      }
      if (cmd.prompt) params.prompt = cmd.prompt;
      if (cmd.max_age !== undefined) params.max_age = String(cmd.max_age);
      pending = { verifier: cmd.pkce !== false ? verifier : undefined, state: params.state, nonce: params.nonce, max_age: cmd.max_age };
      const url = client.buildAuthorizationUrl(config, params);
      return { ok: true, url: url.href, state: params.state };
    }
    case 'callback': {
      const checks = { expectedState: pending.state, expectedNonce: pending.nonce, idTokenExpected: true };
      if (cmd.verifier !== undefined) checks.pkceCodeVerifier = cmd.verifier;
      else if (pending.verifier) checks.pkceCodeVerifier = pending.verifier;
      if (pending.max_age !== undefined) checks.maxAge = pending.max_age;
      const tokens = await client.authorizationCodeGrant(config, new URL(cmd.url), checks);
      return { ok: true, claims: tokens.claims(), access_token: tokens.access_token, refresh_token: tokens.refresh_token, expires_in: tokens.expires_in, id_token: tokens.id_token };
    }
    case 'userinfo': {
      const info = await client.fetchUserInfo(config, cmd.access_token, cmd.sub);
      return { ok: true, info };
    }
    case 'refresh': {
      const tokens = await client.refreshTokenGrant(config, cmd.refresh_token);
      return { ok: true, claims: tokens.claims(), access_token: tokens.access_token, refresh_token: tokens.refresh_token };
    }
    case 'logout_url': {
      const url = client.buildEndSessionUrl(config, { id_token_hint: cmd.id_token_hint, post_logout_redirect_uri: cmd.post_logout_redirect_uri, state: cmd.state });
      return { ok: true, url: url.href };
    }
    default:
      return { ok: false, error: 'unknown_op' };
  }
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  try {
    answer(await handle(JSON.parse(line)));
  } catch (e) {
    answer(failure(e));
  }
}
