// A real OpenID Connect provider (panva/oidc-provider) for the admin SSO test, on loopback.
//
// Protocol over stdio, one JSON object a line, so the test learns the port before it starts
// Guestbridge and Guestbridge's redirect URI before the client is registered:
//   out {"port": N}                          listening on 127.0.0.1:N
//   in  {"client_id", "client_secret", "redirect_uri", "auth_method" (the only one
//        offered, when set), "issuer_host",
//        "accounts": {id: {...}}}
//   out {"ready": true, "kid": "...", "issuer": "http://HOST:N"}
//   in  {"rotate": true}                     new signing key; the old one leaves the JWKS
//   out {"rotated": true, "kid": "..."}
//   in  {"allow_redirect_uri": "..."}        register another redirect URI for the client
//   out {"allowed": true}
//   in  {"set_account": {"id", "account"}}   change a person's claims (their groups)
//   out {"updated": true}
// The dev interactions (login form taking any password, consent form) stand in for the
// organisation's sign-in pages; everything else is the provider as shipped.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

import Provider from 'oidc-provider';

// stdout is the protocol; the provider's own notices go to stderr.
console.log = console.error;
console.info = console.error;
console.warn = console.error;

const server = createServer((req, res) => {
  if (!current) {
    res.statusCode = 503;
    res.end('not configured yet');
    return;
  }
  current(req, res);
});
let current = null;
let config = null;

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
}

function build(issuer, key) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: config.client_id,
      client_secret: config.client_secret,
      redirect_uris: [config.redirect_uri, ...(config.more_redirect_uris || [])],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: config.auth_method || 'client_secret_basic',
    }],
    jwks: { keys: [key] },
    // Narrowed when the test wants a provider that takes only client_secret_post.
    ...(config.auth_method ? { clientAuthMethods: [config.auth_method] } : {}),
    cookies: { keys: [randomBytes(16).toString('hex')] },
    // Scope claims go into the ID token too, as most organisations' providers do for groups.
    conformIdTokenClaims: false,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    async findAccount(_ctx, id) {
      // Read at each sign-in, so the test can move a person between groups.
      const account = (config.accounts || {})[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: account.email,
            email_verified: account.email_verified !== false,
            name: account.name || id,
            preferred_username: id,
            groups: account.groups || [],
          };
        },
      };
    },
  });
  // Quiet unless asked: the test reads stdout as its protocol.
  provider.on('server_error', (_ctx, err) => console.error('provider server_error', err));
  return provider.callback();
}

function send(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  let issuer = null;
  let key = null;
  send({ port });
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const msg = JSON.parse(line);
    if (msg.set_account) {
      config.accounts[msg.set_account.id] = msg.set_account.account;
      send({ updated: true });
      return;
    }
    if (msg.allow_redirect_uri) {
      config.more_redirect_uris = [...(config.more_redirect_uris || []), msg.allow_redirect_uri];
      current = build(issuer, key);
      send({ allowed: true });
      return;
    }
    if (msg.rotate) {
      key = signingKey();
      current = build(issuer, key);
      send({ rotated: true, kid: key.kid });
    } else {
      key = signingKey();
      config = msg;
      // `localhost` makes the provider another site than Guestbridge on 127.0.0.1, as an
      // organisation's provider is, for the browser's SameSite rules.
      issuer = `http://${config.issuer_host || '127.0.0.1'}:${port}`;
      current = build(issuer, key);
      send({ ready: true, kid: key.kid, issuer });
    }
  });
  // The test ending closes stdin: the provider goes with it.
  lines.on('close', () => process.exit(0));
});
