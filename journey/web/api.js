// What both pages share: calling the engine's API with the token it asks for, and reading a
// list whole, a page at a time. The token is asked for once and kept for the browser tab
// (sessionStorage), never taken from the address, where it would stay in the history and
// in logs: if none is given, or the one given is refused, every call says why instead of
// asking again. Errors are problem details (RFC 9457); their `detail` says what went wrong
// in one line.
let token = sessionStorage.getItem("journey-token");
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

// Every item of a list: its pages, followed by their `next` until the last.
async function apiAll(path) {
  const items = [];
  for (let next = path; next; ) {
    const page = await api(next);
    items.push(...page.items);
    next = page.next;
  }
  return items;
}

// Who the token is: its role, and whose customers it reads (`reps`; null for everyone's).
let caller = null;
async function whoAmI() {
  caller = caller || await api("/api/me");
  return caller;
}
