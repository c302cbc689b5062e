// Small helpers shared by the pages: building elements, formatting
// probabilities and priorities, and reporting the page's state for
// people and browser tests.
import FHIR from "fhirclient";

/** sessionStorage key under which the worklist hands the viewer a study. */
export const SELECTED_STUDY_KEY = "orthotriage.study";

/**
 * el builds an element: attrs are set as attributes (class, data-*, aria-*,
 * hidden...; false and null skip one), children are nodes or text.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** byId returns the element with id, failing loudly when the page lacks it. */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`page has no #${id}`);
  return node;
}

/**
 * percent writes a probability as a whole percent, never 0% or 100%: a
 * model's output is neither certain nor impossible.
 */
export function percent(p) {
  if (typeof p !== "number" || Number.isNaN(p)) return "–";
  if (p < 0.01) return "<1%";
  if (p > 0.99) return ">99%";
  return `${Math.round(p * 100)}%`;
}

export const PRIORITY_TEXT = { stat: "STAT", asap: "ASAP", urgent: "Urgent", routine: "Routine" };

/** priorityBadge shows a triage priority as text in a badge (colour is only a second cue). */
export function priorityBadge(priority) {
  const text = PRIORITY_TEXT[priority] || "None";
  return el("span", { class: `badge priority-${PRIORITY_TEXT[priority] ? priority : "none"}` }, text);
}

/** siteOf names where a finding is: its side for paired sites, else its level or region. */
export function siteOf(finding) {
  if (finding.laterality) return capitalise(finding.laterality);
  return finding.region || "–";
}

export function capitalise(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : "";
}

/**
 * signIn completes the SMART launch on a page that is its redirect_uri (or
 * a later page in the same session), saying what to do when there is none.
 */
export async function signIn() {
  try {
    return await FHIR.oauth2.ready();
  } catch (err) {
    throw new Error(`Not signed in: ${err.message} Open orthotriage from the EHR, or the worklist from its launch link.`);
  }
}

/** showStatus writes the page's status line. */
export function showStatus(text, kind = "info") {
  const status = byId("status");
  status.textContent = text;
  status.dataset.kind = kind;
}

/** fail shows an error on the status line and marks the body with data-error for tests. */
export function fail(err) {
  const message = capitalise(err instanceof Error ? err.message : String(err));
  showStatus(message, "error");
  document.body.dataset.error = message;
  console.error(err);
}

/** formatDateTime shows a FHIR date or dateTime: dates as they are, instants in local time. */
export function formatDateTime(value) {
  if (!value) return "–";
  if (value.length <= 10) return value;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return value;
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// nameOf is a Patient's name for people: its official name (or first),
// as text or given names and family; "" when it has none.
export function nameOf(patient) {
  const names = (patient && patient.name) || [];
  const name = names.find((n) => n.use === "official") || names[0];
  if (!name) return "";
  if (name.text) return name.text;
  return [...(name.given || []), name.family].filter(Boolean).join(" ");
}
