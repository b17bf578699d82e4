// Action buttons (guest, sync, partner pages): each form posts to the JSON API with the CSRF
// token from the page's meta tag, then the page reloads to show the new state and timeline.
// Forms with fields (invite, new partner, new token) send them as JSON; the import form
// uploads its file as a dry run, shows the result and applies it with a progress bar.
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.matches("form[data-api]")) return;
  event.preventDefault();
  const confirmText = form.getAttribute("data-confirm");
  if (confirmText && !window.confirm(confirmText)) return;
  const status = document.getElementById("action-status");
  const token = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const headers = { "X-CSRF-Token": token };
  let body;
  const until = form.querySelector("input[name=until]");
  if (until) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify({ until: new Date(until.value).toISOString() });
  }
  const res = await fetch(form.getAttribute("action"), {
    method: form.getAttribute("data-method") || "POST",
    headers, body, credentials: "same-origin",
  });
  if (res.ok) {
    window.location.reload();
  } else {
    let message = res.status + " " + res.statusText;
    try { message = (await res.json()).error || message; } catch (_) { /* not JSON */ }
    if (status) status.textContent = "The action failed: " + message;
  }
});

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content || "";
}

function say(text) {
  const status = document.getElementById("action-status");
  if (status) status.textContent = text;
}

async function failure(res) {
  let message = res.status + " " + res.statusText, body = {};
  try { body = await res.json(); message = body.error || message; } catch (_) { /* not JSON */ }
  return { message, errors: Array.isArray(body.errors) ? body.errors : [] };
}

// A form's fields as the API's JSON: ticked checkboxes of one name make a list, a date is
// the end of that day (UTC), a number is a number, an empty field is left out.
function formJson(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    if (el.type === "checkbox") {
      if (el.checked) (out[el.name] = out[el.name] || []).push(el.value);
    } else if (el.value.trim() !== "") {
      if (el.type === "date") out[el.name] = el.value + "T23:59:59Z";
      else if (el.type === "number") out[el.name] = Number(el.value);
      else out[el.name] = el.value.trim();
    }
  }
  for (const el of form.querySelectorAll("[data-default-from]")) {
    if (!out[el.name]) out[el.name] = out[el.getAttribute("data-default-from")];
  }
  return out;
}

function showFieldErrors(form, errors) {
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  let first = null;
  for (const e of errors) {
    const slot = document.getElementById("err-" + e.field);
    if (slot) slot.textContent = e.message;
    const input = form.elements[e.field];
    if (input && input.setAttribute) {
      input.setAttribute("aria-invalid", "true");
      first = first || input;
    }
  }
  if (first) first.focus();
}

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.matches("form[data-api-json]")) return;
  event.preventDefault();
  say("");
  const res = await fetch(form.getAttribute("action"), {
    method: "POST",
    headers: { "X-CSRF-Token": csrfToken(), "Content-Type": "application/json" },
    body: JSON.stringify(formJson(form)), credentials: "same-origin",
  });
  if (!res.ok) {
    const f = await failure(res);
    showFieldErrors(form, f.errors);
    say("Not done: " + f.message);
    return;
  }
  const body = await res.json();
  const next = form.getAttribute("data-next");
  const secretBox = form.getAttribute("data-show-secret");
  if (secretBox) {
    // The secret exists only in this answer: show it once, and never store it.
    const box = document.getElementById(secretBox);
    box.querySelector(".secret").textContent = body.token;
    box.classList.remove("hidden");
    box.focus();
    form.reset();
  } else if (next) {
    window.location.assign(next.replace("{id}", encodeURIComponent(body.id)));
  } else {
    window.location.reload();
  }
});

// The roster import: a dry run, its diff, then the same file applied.
async function startImport(form, dryRun) {
  const q = new URLSearchParams({
    partner: form.elements.partner.value, mode: form.elements.mode.value,
    dry_run: dryRun ? "true" : "false",
  });
  const data = new FormData();
  data.append("file", form.elements.file.files[0]);
  const res = await fetch("/api/v1/imports?" + q, {
    method: "POST", headers: { "X-CSRF-Token": csrfToken() }, body: data,
    credentials: "same-origin",
  });
  if (!res.ok) throw new Error((await failure(res)).message);
  return (await res.json()).id;
}

async function followImport(id, onRows) {
  for (;;) {
    const res = await fetch("/api/v1/imports/" + encodeURIComponent(id), { credentials: "same-origin" });
    if (!res.ok) throw new Error((await failure(res)).message);
    const body = await res.json();
    if (body.status !== "running") return body;
    onRows(body.rows || 0);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// The import's result as its own page renders it.
async function importResult(id, into) {
  const res = await fetch("/admin/imports/" + encodeURIComponent(id), { credentials: "same-origin" });
  const doc = new DOMParser().parseFromString(await res.text(), "text/html");
  const result = doc.getElementById("import-result");
  into.replaceChildren(...(result ? [result] : []));
  return result;
}

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.matches("form[data-import]")) return;
  event.preventDefault();
  const box = document.getElementById("dry-run");
  const applyBox = document.getElementById("apply-box");
  document.getElementById("applying").classList.add("hidden");
  applyBox.classList.add("hidden");
  say("Checking the file…");
  try {
    const id = await startImport(form, true);
    const done = await followImport(id, (rows) => say("Checking the file: " + rows + " rows read…"));
    await importResult(id, document.getElementById("dry-run-result"));
    box.classList.remove("hidden");
    box.focus();
    if (done.status === "finished" && done.outcome === "dry_run") {
      say("Dry run finished: nothing was changed yet.");
      applyBox.classList.remove("hidden");
      const apply = document.getElementById("apply-button");
      apply.dataset.rows = done.rows;
    } else {
      say("The file cannot be applied: " + (done.error || done.outcome));
    }
  } catch (e) {
    say("The check failed: " + e.message);
  }
});

document.addEventListener("change", (event) => {
  // A different file or partner needs its own dry run before it can be applied.
  if (event.target.closest("form[data-import]")) {
    document.getElementById("apply-box")?.classList.add("hidden");
  }
});

document.addEventListener("click", async (event) => {
  const apply = event.target.closest("#apply-button");
  if (!apply) return;
  const form = document.querySelector("form[data-import]");
  const section = document.getElementById("applying");
  const bar = document.getElementById("import-progress");
  const text = document.getElementById("progress-text");
  const total = Math.max(Number(apply.dataset.rows) || 0, 1);
  // The dry run's diff gives way to the real run's progress and result.
  document.getElementById("dry-run").classList.add("hidden");
  document.getElementById("apply-result").replaceChildren();
  bar.max = total;
  bar.value = 0;
  section.classList.remove("hidden");
  section.focus();
  say("Applying the file…");
  try {
    const id = await startImport(form, false);
    const done = await followImport(id, (rows) => {
      bar.value = Math.min(rows, total);
      text.textContent = rows + " of " + total + " rows read";
    });
    bar.value = total;
    text.textContent = (done.rows ?? total) + " of " + total + " rows read";
    await importResult(id, document.getElementById("apply-result"));
    say(done.status === "finished" && done.outcome === "applied"
      ? "The import is applied." : "The import did not apply: " + (done.error || done.outcome));
  } catch (e) {
    say("The import failed: " + e.message);
  }
});

// A file chosen from this computer fills a text area (the mappings editor), and its name
// the file-name field: the page still previews before anything changes.
document.addEventListener("change", async (event) => {
  const input = event.target;
  if (!input.matches("input[type=file][data-load-into]") || !input.files[0]) return;
  document.getElementById(input.getAttribute("data-load-into")).value = await input.files[0].text();
  const name = document.getElementById(input.getAttribute("data-name-into"));
  if (name) name.value = input.files[0].name;
});
