// What both pages share: calling the engine's API with the token it asks for. The token is
// asked for once: if none is given, or the one given is refused, every call says why instead
// of asking again.
let token = sessionStorage.getItem("journey-token") || new URLSearchParams(location.search).get("token");
if (token) sessionStorage.setItem("journey-token", token);
let asked = false;
let refused = null;

async function api(path, options = {}) {
  for (;;) {
    if (refused) throw new Error(refused);
    const used = token;
    const headers = { ...(options.body ? { "content-type": "application/json" } : {}), ...(used ? { authorization: `Bearer ${used}` } : {}) };
    const response = await fetch(path, { ...options, headers });
    if (response.status !== 401) {
      const body = await response.json();
      if (!response.ok) throw new Error(body.detail || response.statusText);
      return body;
    }
    if (token !== used) continue; // a token was given meanwhile, for another call: use it
    sessionStorage.removeItem("journey-token");
    if (asked) {
      refused = "the engine refused the token given: reload the page to give another";
      continue;
    }
    asked = true;
    const given = prompt(used ? "The engine refused the token it had. Its token, please:" : "This engine asks for a token:");
    if (!given) {
      refused = "this engine asks for a token: reload the page to give one";
      continue;
    }
    token = given;
    sessionStorage.setItem("journey-token", token);
  }
}
