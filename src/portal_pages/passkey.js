// Passkey ceremonies for the portal pages: a button with data-passkey="register",
// "authenticate" or "signin" asks the server for options, lets the browser talk to the
// authenticator, and posts the answer back as JSON with the page's CSRF token.
"use strict";
(function () {
  const ENDPOINTS = {
    register: "/mfa/passkeys/register",
    authenticate: "/mfa/passkey",
    signin: "/signin/passkey",
  };
  const b64 = {
    decode(s) {
      const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(s.length / 4) * 4, "="));
      return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
    },
    encode(buf) {
      let bin = "";
      new Uint8Array(buf).forEach((b) => { bin += String.fromCharCode(b); });
      return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    },
  };
  function creationOptions(o) {
    const pk = o.publicKey;
    pk.challenge = b64.decode(pk.challenge);
    pk.user.id = b64.decode(pk.user.id);
    (pk.excludeCredentials || []).forEach((c) => { c.id = b64.decode(c.id); });
    return o;
  }
  function requestOptions(o) {
    const pk = o.publicKey;
    pk.challenge = b64.decode(pk.challenge);
    (pk.allowCredentials || []).forEach((c) => { c.id = b64.decode(c.id); });
    return o;
  }
  function created(cred) {
    return {
      id: cred.id, rawId: b64.encode(cred.rawId), type: cred.type,
      response: {
        attestationObject: b64.encode(cred.response.attestationObject),
        clientDataJSON: b64.encode(cred.response.clientDataJSON),
      },
    };
  }
  function asserted(cred) {
    const r = cred.response;
    return {
      id: cred.id, rawId: b64.encode(cred.rawId), type: cred.type,
      response: {
        authenticatorData: b64.encode(r.authenticatorData),
        clientDataJSON: b64.encode(r.clientDataJSON),
        signature: b64.encode(r.signature),
        userHandle: r.userHandle ? b64.encode(r.userHandle) : null,
      },
    };
  }
  async function post(url, body) {
    const res = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    return { ok: res.ok, data };
  }
  async function run(kind, box, status) {
    const csrf = box.dataset.csrf;
    const base = ENDPOINTS[kind];
    status.textContent = "Follow your browser's prompt…";
    const start = await post(base + "/start", { csrf });
    if (!start.ok) throw new Error(start.data.message || "The server refused to start.");
    let credential;
    if (kind === "register") {
      credential = created(await navigator.credentials.create(creationOptions(start.data)));
    } else {
      credential = asserted(await navigator.credentials.get(requestOptions(start.data)));
    }
    const nameInput = document.getElementById("passkey-name");
    const finish = await post(base + "/finish", {
      csrf, credential, name: nameInput ? nameInput.value : "",
    });
    if (!finish.ok) throw new Error(finish.data.message || "That passkey was not accepted.");
    status.textContent = "Done.";
    window.location.assign(finish.data.next || "/apps");
  }
  document.querySelectorAll("[data-passkey]").forEach((button) => {
    const box = document.getElementById("passkey");
    const status = document.getElementById("passkey-status");
    if (!window.PublicKeyCredential) {
      button.disabled = true;
      status.textContent = "This browser does not support passkeys.";
      return;
    }
    button.addEventListener("click", () => {
      button.disabled = true;
      run(button.dataset.passkey, box, status)
        .catch((e) => { status.textContent = e.message || String(e); })
        .finally(() => { button.disabled = false; });
    });
  });
})();
