// The SMART launch URL. EHR launch: launch.html?iss=<FHIR base>&launch=<opaque>
// goes on to the viewer; launch.html?iss=<FHIR base>&target=worklist is the
// worklist's standalone launch. fhirclient reads iss and launch from the URL
// itself and does discovery, PKCE (S256, required) and the redirect.
import FHIR from "fhirclient";
import { loadConfig } from "./api.js";
import { SELECTED_STUDY_KEY, byId, fail, showStatus } from "./ui.js";

async function launch() {
  const params = new URLSearchParams(location.search);
  if (!params.get("iss")) {
    byId("help").hidden = false;
    throw new Error("no FHIR server given: this page needs ?iss=<FHIR base URL> (the EHR adds it when it launches the app)");
  }
  const worklist = params.get("target") === "worklist";
  showStatus(worklist ? "Signing in to open the worklist…" : "Signing in to open the study…");
  const config = await loadConfig();
  if (!worklist) {
    // An EHR launch brings its own study; drop one the worklist chose earlier.
    sessionStorage.removeItem(SELECTED_STUDY_KEY);
  }
  await FHIR.oauth2.authorize({
    clientId: config.clientId,
    scope: worklist ? config.scopes.standalone : config.scopes.ehr,
    redirectUri: worklist ? "worklist.html" : "viewer.html",
    pkceMode: "required",
    completeInTarget: true,
  });
}

launch().catch(fail);
