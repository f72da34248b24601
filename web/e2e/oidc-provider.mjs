// A real, certified OpenID Connect provider (the npm package oidc-provider) on a loopback port,
// for the control plane's sign-in tests. It prints `issuer <url>` once it serves, and stops on
// SIGTERM. Its one interaction is a login form that takes a username from OIDC_USERS (no
// password: the tests are the people) and grants the scopes asked for.
//
//   OIDC_CLIENTS  JSON list of oidc-provider client metadata (client_id, client_secret,
//                 redirect_uris, …)
//   OIDC_USERS    JSON object: username → claims (email, email_verified, name, picture, groups)
//   OIDC_CODE_TTL seconds an authorization code lives (default 60)
//   OIDC_ID_TOKEN_CLAIMS  "1": claims in the ID token too (default: only in userinfo, as the
//                 spec's code flow has it)
import http from 'node:http';
import { once } from 'node:events';
import Provider from 'oidc-provider';

const clients = JSON.parse(process.env.OIDC_CLIENTS || '[]');
const users = JSON.parse(process.env.OIDC_USERS || '{}');
const codeTtl = Number(process.env.OIDC_CODE_TTL || 60);

let provider;
const server = http.createServer((req, res) => {
  handle(req, res).catch((error) => {
    console.error('oidc-provider test server:', error);
    if (!res.headersSent) {
      res.statusCode = 500;
      res.end(String(error));
    }
  });
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const issuer = `http://127.0.0.1:${server.address().port}`;

provider = new Provider(issuer, {
  clients,
  async findAccount(ctx, id) {
    const claims = users[id];
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'picture', 'preferred_username', 'groups'],
  },
  conformIdTokenClaims: process.env.OIDC_ID_TOKEN_CLAIMS !== '1',
  pkce: { required: () => true },
  ttl: {
    AuthorizationCode: codeTtl,
    Interaction: 600,
    Grant: 3600,
    Session: 3600,
    IdToken: 3600,
    AccessToken: 3600,
  },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['videocall-test-cookie-key'] },
});
provider.on('server_error', (ctx, error) => console.error('server_error', error));

async function body(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString());
}

async function handle(req, res) {
  const url = new URL(req.url, issuer);
  const login = url.pathname.match(/^\/interaction\/([^/]+)\/login$/);
  if (login && req.method === 'POST') {
    const username = (await body(req)).get('login') || '';
    const details = await provider.interactionDetails(req, res);
    if (!users[username]) {
      res.statusCode = 200;
      res.setHeader('content-type', 'text/html');
      res.end('<p>No such user.</p>');
      return;
    }
    const grant = new provider.Grant({ accountId: username, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: username }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  if (url.pathname.startsWith('/interaction/') && req.method === 'GET') {
    res.setHeader('content-type', 'text/html');
    res.end(`<!doctype html><form method="post" action="${url.pathname}/login">
      <label>Username <input name="login"></label><button>Sign in</button></form>`);
    return;
  }
  provider.callback()(req, res);
}

console.log(`issuer ${issuer}`);
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
