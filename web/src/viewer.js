// The study viewer: the EHR opens it from an orthotriage card (the card's
// appContext names the study), the worklist from one of its rows. It shows
// the model's reading of the study over the radiograph, takes the reader's
// agreement or disagreement as CDS Hooks feedback, and saves the suggested
// preliminary report on the FHIR server with the reader's token.
import { fhirErrorText, post } from "./api.js";
import { DEFAULT_LEVEL, DEFAULT_WINDOW, RadiographView } from "./image-view.js";
import { PRIORITY_TEXT, SELECTED_STUDY_KEY, byId, capitalise, el, fail, nameOf, percent, priorityBadge, showStatus, signIn, siteOf } from "./ui.js";

const POLL_MS = 2000;
const MAX_POLLS = 300; // ten minutes

async function main() {
  const client = await signIn();
  const fhirServer = client.state.serverUrl;
  const context = launchContext(client);
  linkWorklist(context, fhirServer);
  if (!context) {
    throw new Error(
      "No study to show: the EHR passed no appContext with the launch. Open orthotriage from its card on a study, or choose a study in the worklist.",
    );
  }
  const ask = { fhirServer, imagingStudy: context.imagingStudy, service: context.service };
  showStatus("Loading the study…");
  const study = await loadStudy(client, ask);
  await showPatient(client, study);
  renderStudy(study);
  setupFeedback(client, context, study, ask);
  setupSave(client, study, ask);
  if (study.status === "done") await showImages(client, study, ask);
  finish(study);
}

/**
 * launchContext says which study to show and with which card: the EHR's
 * appContext (a JSON string, or an object) in the token response; else an
 * ImagingStudy in SMART's fhirContext; else the study the worklist chose
 * (then the card is unknown). null when there is none.
 */
function launchContext(client) {
  const token = client.state.tokenResponse || {};
  let app = token.appContext;
  if (typeof app === "string" && app.trim() !== "") {
    try {
      app = JSON.parse(app);
    } catch {
      throw new Error("The EHR's appContext for this launch is not JSON; orthotriage's cards pass a JSON object.");
    }
  }
  if (app && typeof app === "object" && typeof app.imagingStudy === "string") {
    return { imagingStudy: app.imagingStudy, card: app.card || "", service: app.service || "", from: "ehr" };
  }
  const inContext = (Array.isArray(token.fhirContext) ? token.fhirContext : []).find(
    (c) => c && typeof c.reference === "string" && c.reference.startsWith("ImagingStudy/"),
  );
  if (inContext) return { imagingStudy: inContext.reference, card: "", service: "", from: "ehr" };
  try {
    const chosen = JSON.parse(sessionStorage.getItem(SELECTED_STUDY_KEY) || "null");
    if (chosen && typeof chosen.imagingStudy === "string") {
      return { imagingStudy: chosen.imagingStudy, card: "", service: "", from: "worklist" };
    }
  } catch {
    // a damaged entry is as good as none
  }
  return null;
}

function linkWorklist(context, fhirServer) {
  const link = byId("open-worklist");
  if (context && context.from === "worklist") {
    link.href = "worklist.html";
    link.textContent = "Back to worklist";
  } else {
    link.href = `launch.html?target=worklist&iss=${encodeURIComponent(fhirServer)}`;
  }
  link.hidden = false;
}

// showPatient names the study's patient (its subject, as the FHIR server
// told orthotriage) above everything else, and refuses a study that is not
// the EHR's launch patient's: a reading is never shown for another patient.
async function showPatient(client, study) {
  const launched = client.patient && client.patient.id;
  if (launched && study.patient !== `Patient/${launched}`) {
    throw new Error("This study is not the chart's patient's: orthotriage will not show it here. Open the study from its own patient's chart.");
  }
  let text = study.patient;
  try {
    const p = await client.request(study.patient);
    const name = nameOf(p);
    if (name) text = [name, p.birthDate ? `born ${p.birthDate}` : "", p.gender || ""].filter(Boolean).join(", ");
  } catch {
    // the token may not read Patients: the reference is shown
  }
  const banner = byId("patient");
  banner.replaceChildren(el("strong", {}, "Patient: "), text);
  banner.hidden = false;
}

// canWrite reports whether the token's scopes let it create
// DiagnosticReports (the save needs that and the other resources' own).
function canWrite(client) {
  const scope = (client.state.tokenResponse && client.state.tokenResponse.scope) || "";
  return /(^|\s)(patient|user)\/(DiagnosticReport|\*)\.(\w*c\w*|write|\*)(\s|$)/.test(scope);
}

// loadStudy asks for the study, polling while its analysis is pending.
async function loadStudy(client, ask) {
  for (let polls = 0; ; polls++) {
    const study = await post(client, "study", ask);
    if (study.status !== "pending") return study;
    if (polls >= MAX_POLLS) throw new Error("The analysis is still in progress after ten minutes; reload the page later.");
    showStatus("Analysis in progress… (checking again every 2 s)", "pending");
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function renderStudy(study) {
  const result = study.result || {};
  renderModel(result.model);
  byId("review").hidden = !result.review;
  if (study.status === "no-radiograph") {
    showStatus("This study has no radiograph that orthotriage's models read.");
    return;
  }
  if (study.status === "failed") {
    showStatus("The analysis of this study failed; orthotriage's logs say why. Read the study without the AI.", "error");
    return;
  }
  if (result.notRead) {
    const notRead = byId("not-read");
    notRead.textContent = `Not read: ${result.notRead.text || result.notRead.reason}`;
    notRead.hidden = false;
  } else {
    renderFindings(result.findings || []);
    renderAcuity(result.findings || []);
  }
  renderNotes(result.notes || []);
}

function renderModel(model) {
  if (!model) return;
  const box = byId("model");
  const rows = [
    ["Model", `${model.id} ${model.version}`],
    ["Task", model.task],
    ["Intended use", model.intendedUse],
    ["Training data", model.trainingData],
  ].filter(([, v]) => v);
  box.replaceChildren(el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  box.hidden = false;
  const warning = model.warning || (model.trainingData === "synthetic" ? "Trained on synthetic data: not for clinical use." : "");
  if (warning) {
    const w = byId("warning");
    w.replaceChildren(el("strong", {}, "Warning: "), warning);
    w.hidden = false;
  }
}

function renderFindings(findings) {
  const table = byId("findings");
  const rows = findings.map((f) =>
    el(
      "tr",
      { "data-finding": "", "data-region": f.region, class: f.lowConfidence ? "low-confidence" : null },
      el("td", {}, findingCell(f)),
      el("td", {}, siteOf(f)),
      el("td", {}, el("span", { class: "num" }, percent(f.probability)), confidenceMarks(f)),
      el("td", {}, priorityBadge(f.priority)),
    ),
  );
  table.tBodies[0].replaceChildren(...rows);
  table.hidden = false;
}

// findingCell is the finding's class, the class that set its priority when
// that is another, and every class's probability on request.
function findingCell(f) {
  const parts = [el("span", { class: "finding" }, f.display || f.class)];
  const flagged = f.priorityClass && f.priorityClass !== f.class && (f.probabilities || []).find((p) => p.class === f.priorityClass);
  if (flagged) parts.push(el("span", { class: "flagged" }, `Priority from ${flagged.display} (${percent(flagged.probability)})`));
  if ((f.probabilities || []).length > 1) {
    parts.push(
      el(
        "details",
        {},
        el("summary", {}, "All classes"),
        el("ul", {}, f.probabilities.map((p) => el("li", {}, `${p.display || p.class}: ${percent(p.probability)}`))),
      ),
    );
  }
  return parts;
}

// confidenceMarks flags a probability the reader should not lean on.
function confidenceMarks(f) {
  const marks = [];
  if (f.lowConfidence) marks.push(el("span", { class: "mark low" }, el("span", { "aria-hidden": "true" }, "⚠ "), "Low confidence"));
  if (f.reported === false) marks.push(el("span", { class: "mark" }, "Below reporting threshold"));
  return marks;
}

// renderAcuity shows, for each vertebral finding, how its acuity was
// reached: the nomogram's points, or which clinical values were missing.
function renderAcuity(findings) {
  const sections = findings
    .filter((f) => f.acuity)
    .map((f) => {
      const a = f.acuity;
      const facts = [
        ["Fracture", percent(a.fracture)],
        ["Acute (image score, DLR)", percent(a.dlr)],
        ["Acuity from", a.nomogram ? "nomogram (image score and clinical values)" : "image score alone"],
      ];
      return el(
        "section",
        { class: "acuity", "data-acuity": f.region },
        el("h3", {}, `Acuity: ${siteOf(f)}`),
        el("dl", {}, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
        a.nomogram ? nomogramTable(a.nomogram, f) : null,
        a.missing && a.missing.length
          ? el("p", { class: "missing" }, `Clinical values missing for the nomogram: ${a.missing.join(", ")}.`)
          : null,
      );
    });
  byId("acuity").replaceChildren(...sections);
}

const PREFERRED_COLUMNS = ["label", "name", "value", "unit", "points", "clipped"];

// nomogramTable renders a nomogram reading generically: its points (a list
// of objects, or an object of name to number or object) as rows, then its
// other numeric fields (total, probability...) as a footer.
function nomogramTable(nomogram, f) {
  let rows = [];
  const points = nomogram.points;
  if (Array.isArray(points)) {
    rows = points.map((p) => (p && typeof p === "object" ? p : { points: p }));
  } else if (points && typeof points === "object") {
    rows = Object.entries(points).map(([name, v]) => (v && typeof v === "object" ? { name, ...v } : { name, points: v }));
  }
  let columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  if (columns.includes("label") && rows.every((r) => r.label)) columns = columns.filter((c) => c !== "name");
  columns.sort((a, b) => rank(a) - rank(b));
  const totals = Object.entries(nomogram).filter(([k, v]) => k !== "points" && typeof v === "number");
  return el(
    "table",
    { class: "nomogram" },
    el("caption", {}, `Nomogram points, ${siteOf(f)}`),
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, words(c))))),
    el(
      "tbody",
      {},
      rows.map((r) => el("tr", {}, columns.map((c) => el("td", { class: typeof r[c] === "number" ? "num" : null }, cellText(c, r[c]))))),
    ),
    totals.length
      ? el(
          "tfoot",
          {},
          totals.map(([k, v]) =>
            el("tr", {}, el("th", { scope: "row", colspan: Math.max(1, columns.length - 1) }, words(k)), el("td", { class: "num" }, cellText(k, v))),
          ),
        )
      : null,
  );
}

function rank(column) {
  const i = PREFERRED_COLUMNS.indexOf(column);
  return i < 0 ? PREFERRED_COLUMNS.length : i;
}

// words turns a JSON field name into a heading: totalPoints -> Total points.
function words(name) {
  return capitalise(name.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase());
}

function cellText(column, v) {
  if (v === undefined || v === null || v === "") return "–";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number") {
    if (/probability/i.test(column)) return percent(v);
    return String(Math.round(v * 100) / 100);
  }
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function renderNotes(notes) {
  const list = byId("notes");
  list.replaceChildren(...notes.map((n) => el("li", {}, n)));
  list.hidden = notes.length === 0;
}

// regionBox is where a finding was read, in the original image's pixels:
// its own box, else the hip localiser's box for its side, else the
// vertebral body's box. null when none is known.
function regionBox(f, result) {
  const candidates = [f.box, f.laterality && result.hips && result.hips[f.laterality] && result.hips[f.laterality].box, f.acuity && f.acuity.box];
  return candidates.find((b) => Array.isArray(b) && b.length === 4 && b[2] > 0 && b[3] > 0) || null;
}

async function showImages(client, study, ask) {
  const result = study.result;
  const images = result.images || [];
  if (images.length === 0) return;
  const view = new RadiographView(byId("image"));
  const heatmaps = await decodeHeatmaps(result.findings || []);
  setupImageControls(view, heatmaps.size > 0);
  let objectURL = "";
  const show = async (index) => {
    showStatus(`Loading image ${index + 1} of ${images.length}…`);
    const blob = await post(client, "image", { ...ask, image: index }, { as: "blob" });
    const img = new Image();
    const url = URL.createObjectURL(blob);
    img.src = url;
    await img.decode();
    if (objectURL) URL.revokeObjectURL(objectURL);
    objectURL = url;
    const columns = images[index].columns || img.naturalWidth;
    const scale = img.naturalWidth / columns;
    view.setImage(img);
    view.setRegions(regionsOn(index, result, heatmaps, scale));
  };
  const select = byId("image-select");
  if (images.length > 1) {
    select.replaceChildren(...images.map((im, i) => el("option", { value: i }, `${i + 1}: ${[im.bodyPart, im.viewPosition].filter(Boolean).join(" ") || "image"}`)));
    byId("image-choice").hidden = false;
    select.addEventListener("change", () => show(Number(select.value)).then(() => showStatus(readyText(study)), fail));
  }
  const first = (result.findings || []).find((f) => regionBox(f, result))?.image ?? 0;
  select.value = String(first);
  await show(first);
}

function regionsOn(index, result, heatmaps, scale) {
  return (result.findings || [])
    .map((f, i) => ({ f, i, box: regionBox(f, result) }))
    .filter(({ f, box }) => box && (f.image ?? 0) === index)
    .map(({ f, i, box }) => ({
      box: box.map((v) => v * scale),
      label: `${siteOf(f)}: ${f.display || f.class} ${percent(f.probability)}`,
      heatmap: heatmaps.get(i) || null,
    }));
}

// decodeHeatmaps decodes each finding's heat map PNG, keyed by the finding's index.
async function decodeHeatmaps(findings) {
  const out = new Map();
  await Promise.all(
    findings.map(async (f, i) => {
      if (!f.heatmap) return;
      const img = new Image();
      img.src = `data:image/png;base64,${f.heatmap}`;
      try {
        await img.decode();
        out.set(i, img);
      } catch (err) {
        console.warn("heat map of finding", i, "does not decode", err);
      }
    }),
  );
  return out;
}

function setupImageControls(view, hasHeatmaps) {
  byId("zoom-in").addEventListener("click", () => view.zoomBy(1.25));
  byId("zoom-out").addEventListener("click", () => view.zoomBy(0.8));
  byId("view-reset").addEventListener("click", () => view.resetView());
  const win = byId("window");
  const level = byId("level");
  const applyWL = () => {
    byId("window-value").value = win.value;
    byId("level-value").value = level.value;
    view.setWindowLevel(Number(win.value), Number(level.value));
  };
  win.addEventListener("input", applyWL);
  level.addEventListener("input", applyWL);
  byId("wl-reset").addEventListener("click", () => {
    win.value = String(DEFAULT_WINDOW);
    level.value = String(DEFAULT_LEVEL);
    applyWL();
  });
  const toggle = byId("heatmap-toggle");
  const opacity = byId("heatmap-opacity");
  const applyHeatmap = () => {
    byId("heatmap-opacity-value").value = `${opacity.value}%`;
    opacity.disabled = !toggle.checked || !hasHeatmaps;
    view.setHeatmap(toggle.checked, Number(opacity.value) / 100);
  };
  toggle.addEventListener("change", applyHeatmap);
  opacity.addEventListener("input", applyHeatmap);
  toggle.disabled = !hasHeatmaps;
  byId("heatmap-note").hidden = hasHeatmaps;
  applyHeatmap();
}

function setupFeedback(client, context, study, ask) {
  const agree = byId("agree");
  const disagree = byId("disagree");
  const send = byId("send-feedback");
  const status = byId("feedback-status");
  const reason = byId("reason");
  const reasons = study.overrideReasons || [];
  reason.append(...reasons.map((r, i) => el("option", { value: i }, r.display || r.code)));
  const service = context.service || study.service || "";
  if (!context.card || !service) {
    status.textContent = "Feedback goes with a card; open from the EHR card to send it.";
    return;
  }
  if (study.status !== "done") return;
  agree.disabled = false;
  disagree.disabled = false;
  const sendFeedback = async (outcome, overrideReason) => {
    for (const b of [agree, disagree, send]) b.disabled = true;
    status.textContent = "Sending feedback…";
    try {
      const body = { ...ask, card: context.card, service, outcome };
      if (overrideReason) body.overrideReason = overrideReason;
      const answer = await post(client, "feedback", body);
      status.textContent = answer.result === "duplicate" ? "Feedback sent (it had been recorded before)." : "Feedback sent.";
      status.dataset.kind = "ok";
      byId("disagree-form").hidden = true;
      disagree.setAttribute("aria-expanded", "false");
    } catch (err) {
      status.textContent = `Feedback not sent: ${err.message}`;
      status.dataset.kind = "error";
      for (const b of [agree, disagree, send]) b.disabled = false;
    }
  };
  agree.addEventListener("click", () => sendFeedback("accepted"));
  disagree.addEventListener("click", () => {
    byId("disagree-form").hidden = false;
    disagree.setAttribute("aria-expanded", "true");
    reason.focus();
  });
  send.addEventListener("click", () => {
    const overrideReason = {};
    if (reason.value !== "") overrideReason.reason = reasons[Number(reason.value)];
    const comment = byId("comment").value.trim();
    if (comment) overrideReason.userComment = comment;
    sendFeedback("overridden", Object.keys(overrideReason).length ? overrideReason : undefined);
  });
}

// setupSave sends the suggested resources to the FHIR server as one
// transaction (PUT each by its id, so saving twice changes nothing), with
// the reader's own token, then asks orthotriage whether the report is there.
function setupSave(client, study, ask) {
  const save = byId("save");
  const status = byId("save-status");
  const resources = study.resources || [];
  if (study.saved) {
    status.textContent = "Report saved.";
    return;
  }
  if (study.status !== "done" || resources.length === 0) {
    status.textContent = "Nothing to save for this study.";
    return;
  }
  if (!canWrite(client)) {
    status.textContent = "This sign-in may read but not write reports: open the study from its card in the EHR to save it.";
    return;
  }
  save.disabled = false;
  save.addEventListener("click", async () => {
    save.disabled = true;
    status.textContent = "Saving…";
    status.dataset.kind = "";
    const bundle = {
      resourceType: "Bundle",
      type: "transaction",
      entry: resources.map((resource) => ({ resource, request: { method: "PUT", url: `${resource.resourceType}/${resource.id}` } })),
    };
    try {
      // An absolute URL: fhirclient would turn "" into the base with a trailing slash.
      await client.request({
        url: ask.fhirServer,
        method: "POST",
        body: JSON.stringify(bundle),
        headers: { "Content-Type": "application/fhir+json" },
      });
    } catch (err) {
      status.textContent = `Report not saved: ${fhirErrorText(err)}`;
      status.dataset.kind = "error";
      save.disabled = false;
      return;
    }
    status.textContent = "Report saved.";
    status.dataset.kind = "ok";
    try {
      const again = await post(client, "study", ask);
      if (!again.saved) status.textContent = "Report saved; orthotriage does not see it on the FHIR server yet.";
    } catch (err) {
      console.warn("re-reading the study after saving", err);
    }
  });
}

function readyText(study) {
  const r = study.result || {};
  if (r.notRead) return "The model did not read this study.";
  const n = (r.findings || []).length;
  return `AI reading: ${n} ${n === 1 ? "finding" : "findings"}${PRIORITY_TEXT[r.priority] ? `, priority ${PRIORITY_TEXT[r.priority]}` : ""}.`;
}

function finish(study) {
  if (study.status === "done") showStatus(readyText(study));
  document.body.dataset.ready = "true";
}

main().catch(fail);
