// The worklist: the studies the reader's token can see, as orthotriage
// triaged them (already sorted by priority, then oldest first). A row opens
// the study in the viewer in this tab and session.
import { loadConfig, post } from "./api.js";
import { SELECTED_STUDY_KEY, byId, el, fail, formatDateTime, nameOf, percent, priorityBadge, showStatus, signIn } from "./ui.js";

const DEFAULT_REFRESH_SECONDS = 30;

async function main() {
  const client = await signIn();
  const config = await loadConfig().catch(() => ({}));
  const seconds = Number(config.refreshSeconds) > 0 ? Number(config.refreshSeconds) : DEFAULT_REFRESH_SECONDS;
  const names = new Map(); // "Patient/<id>" -> Promise<string>
  const button = byId("refresh");
  let timer = 0;
  let busy = false;
  const refresh = async () => {
    if (busy) return;
    busy = true;
    clearTimeout(timer);
    button.disabled = true;
    try {
      const list = await post(client, "worklist", { fhirServer: client.state.serverUrl });
      render(client, list.rows || [], names);
      const when = list.refreshed ? new Date(list.refreshed) : new Date();
      const refreshed = byId("refreshed");
      refreshed.dateTime = when.toISOString();
      refreshed.textContent = when.toLocaleTimeString();
      const n = (list.rows || []).length;
      showStatus(n === 0 ? "No studies to show." : `${n} ${n === 1 ? "study" : "studies"}; refreshes every ${seconds} s.`);
      delete document.body.dataset.error;
      document.body.dataset.ready = "true";
    } catch (err) {
      fail(err);
    } finally {
      busy = false;
      button.disabled = false;
      timer = setTimeout(refresh, seconds * 1000);
    }
  };
  button.addEventListener("click", refresh);
  await refresh();
}

function render(client, rows, names) {
  const tbody = byId("worklist").tBodies[0];
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.study : undefined;
  tbody.replaceChildren(...rows.map((row) => rowOf(client, row, names)));
  if (focused) {
    const again = [...tbody.rows].find((tr) => tr.dataset.study === focused);
    if (again) again.focus();
  }
}

function rowOf(client, row, names) {
  const patient = el("td", { class: "patient" }, row.patient || "–");
  const tr = el(
    "tr",
    { "data-study": row.imagingStudy, "data-priority": row.priority || "none", tabindex: 0, role: "link" },
    patient,
    el(
      "td",
      {},
      el("span", { class: "line" }, formatDateTime(row.started)),
      el("span", { class: "line muted" }, [row.modality, row.bodyPart].filter(Boolean).join(" / ") || "–"),
    ),
    el("td", {}, row.top ? topFinding(row.top) : row.description || "–"),
    el("td", {}, priorityBadge(row.priority)),
    el("td", {}, statusText(row)),
  );
  if (row.patient) {
    patientName(client, row.patient, names).then((name) => {
      patient.textContent = name;
      tr.setAttribute("aria-label", `Open the study of ${name}, ${formatDateTime(row.started)}`);
    });
  }
  tr.addEventListener("click", () => open(row));
  tr.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      open(row);
    }
  });
  return tr;
}

function topFinding(top) {
  if (!top) return "–";
  return [top.display, top.region && `(${top.region})`, percent(top.probability)].filter(Boolean).join(" ");
}

function statusText(row) {
  const parts = [];
  if (row.status === "pending") parts.push("Pending analysis");
  else if (row.status === "not-read") parts.push(row.notRead ? `Not read: ${row.notRead}` : "Not read");
  else if (row.status === "ai-read") parts.push(row.review ? "AI-read, needs review" : "AI-read");
  else if (row.status) parts.push(row.status);
  if (row.feedback === "accepted") parts.push("feedback given (agreed)");
  else if (row.feedback === "overridden") parts.push("feedback given (disagreed)");
  if (row.saved) parts.push("report saved");
  if (row.taskStatus) parts.push(`Task ${row.taskStatus}`);
  return parts.join("; ") || "–";
}

// patientName reads the Patient with the reader's token, once per patient;
// the reference stands in when the server refuses or the name is absent.
function patientName(client, ref, names) {
  if (!names.has(ref)) {
    names.set(
      ref,
      client.request(ref).then(
        (p) => nameOf(p) || ref,
        () => ref,
      ),
    );
  }
  return names.get(ref);
}

function open(row) {
  sessionStorage.setItem(SELECTED_STUDY_KEY, JSON.stringify({ imagingStudy: row.imagingStudy }));
  location.href = "viewer.html";
}

main().catch(fail);
