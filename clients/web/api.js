// The daemon's HTTP API as the browser uses it. Every call resolves to {ok, status, body};
// a refusal carries the server's {error: {code, message, ...}}, a dead network the code
// "network", so pages only ever branch on error codes.

const TOKEN_KEY = "sferum.token";

export function savedToken() {
  return localStorage.getItem(TOKEN_KEY);
}

export function saveToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

export async function call(method, path, body) {
  const headers = {};
  const token = savedToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    return { ok: false, status: 0, body: { error: { code: "network" } } };
  }
  let parsed;
  try {
    parsed = await response.json();
  } catch {
    parsed = { error: { code: `http_${response.status}` } };
  }
  return { ok: response.ok, status: response.status, body: parsed };
}

export function deviceName() {
  // Something a person recognises in their device list, never the full user agent.
  const platform = navigator.userAgentData?.platform || navigator.platform || "";
  return `Браузер${platform ? ` (${platform})` : ""}`.slice(0, 64);
}
