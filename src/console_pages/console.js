// Action buttons of the guest page: each form posts to the JSON API with the CSRF token
// from the page's meta tag, then the page reloads to show the new state and timeline.
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
