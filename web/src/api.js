// Calls orthotriage's app API (POST JSON, same origin, the SMART access
// token as bearer) and turns FHIR OperationOutcome errors, the API's and
// the FHIR server's, into the text of their diagnostics.

// The pages live under /app/; the API beside them under /api/v1/app/.
// Resolving against the page keeps a reverse proxy's path prefix.
const API_BASE = "../api/v1/app/";

/** APIError is a failed call: message is for the user, status the HTTP status (0: no answer). */
export class APIError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "APIError";
    this.status = status;
  }
}

/** loadConfig reads the app's config.json (clientId, scopes, refreshSeconds), served by orthotriage. */
export async function loadConfig() {
  let res;
  try {
    res = await fetch("config.json", { cache: "no-store", headers: { Accept: "application/json" } });
  } catch (err) {
    throw new APIError(`cannot load config.json: ${err.message}`, 0);
  }
  if (!res.ok) throw new APIError(`cannot load config.json: ${await errorText(res)}`, res.status);
  return res.json();
}

/**
 * post calls POST /api/v1/app/<name> with body as JSON and the client's
 * access token (refreshed first when it is about to expire). It returns the
 * parsed JSON, or the Blob when as is "blob".
 */
export async function post(client, name, body, { as = "json" } = {}) {
  await client.refreshIfNeeded();
  const token = client.getState("tokenResponse.access_token");
  if (!token) throw new APIError("no access token: launch the app from the EHR", 401);
  const expiresAt = client.getState("expiresAt");
  if (expiresAt && expiresAt * 1000 < Date.now()) {
    // No refresh token was granted: the FHIR server would refuse it.
    throw new APIError("your sign-in has expired: launch the app again from the EHR", 401);
  }
  let res;
  try {
    res = await fetch(new URL(API_BASE + name, document.baseURI), {
      method: "POST",
      cache: "no-store",
      credentials: "omit",
      headers: {
        Accept: as === "blob" ? "image/png, application/fhir+json" : "application/json, application/fhir+json",
        "Content-Type": "application/json",
        Authorization: `Bearer ${token}`,
      },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new APIError(`orthotriage did not answer (${err.message})`, 0);
  }
  if (!res.ok) throw new APIError(await errorText(res), res.status);
  return as === "blob" ? res.blob() : res.json();
}

/** outcomeText joins an OperationOutcome's issues' diagnostics (or details text); "" when it has none. */
export function outcomeText(body) {
  if (!body || body.resourceType !== "OperationOutcome" || !Array.isArray(body.issue)) return "";
  return body.issue
    .map((i) => i.diagnostics || (i.details && i.details.text) || i.code || "")
    .filter(Boolean)
    .join("; ");
}

// errorText reads a failed response: the OperationOutcome's text when it
// is one, else the status line.
async function errorText(res) {
  const status = `${res.status} ${res.statusText}`.trim();
  let text = "";
  try {
    const type = res.headers.get("Content-Type") || "";
    if (/json/i.test(type)) text = outcomeText(await res.json());
  } catch {
    // an unreadable body leaves the status line
  }
  return text ? `${text} (${status})` : status;
}

/**
 * fhirErrorText reads an error from fhirclient's request(): its HttpError
 * carries the status and appends the response body to its message, so an
 * OperationOutcome's diagnostics are taken from there.
 */
export function fhirErrorText(err) {
  const message = String((err && err.message) || err);
  const at = message.indexOf("\n\n");
  if (at >= 0) {
    try {
      const text = outcomeText(JSON.parse(message.slice(at + 2)));
      const status = [err.status, err.statusText].filter(Boolean).join(" ");
      if (text) return status ? `${text} (${status})` : text;
    } catch {
      // not JSON: fall through to the first line
    }
  }
  return message.split("\n")[0];
}
