// Builds orthotriage's SMART app into dist/: each page's script bundled
// (with fhirclient) and minified by esbuild, the HTML and CSS copied as
// they are. The same sources give the same bytes. Run by
// `scripts/setup.sh web`; `node build.mjs` from web/ does the same.
import { build } from "esbuild";
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, "src");
const dist = join(root, "dist");
const pages = ["launch", "viewer", "worklist"];

// fhirclient falls back to isomorphic-webcrypto (a React Native shim) when
// the page has no globalThis.crypto; every browser the app supports has
// it, so the shim is replaced by a module that says what is missing.
const noWebCryptoShim = {
  name: "no-webcrypto-shim",
  setup(b) {
    b.onResolve({ filter: /^isomorphic-webcrypto$/ }, () => ({ path: "isomorphic-webcrypto", namespace: "stub" }));
    b.onLoad({ filter: /.*/, namespace: "stub" }, () => ({
      contents: 'throw new Error("this browser has no Web Crypto API (globalThis.crypto); use a current browser");',
      loader: "js",
    }));
  },
};

async function clean() {
  await mkdir(dist, { recursive: true });
  for (const name of await readdir(dist)) {
    if (name !== "README.md") await rm(join(dist, name), { recursive: true, force: true });
  }
}

async function main() {
  await clean();
  await build({
    entryPoints: Object.fromEntries(pages.map((p) => [p, join(src, `${p}.js`)])),
    outdir: dist,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    minify: true,
    sourcemap: false,
    legalComments: "eof",
    charset: "utf8",
    // FHIRCLIENT_PURE drops fhirclient's fetch and AbortController
    // polyfills, which current browsers do not need.
    define: { FHIRCLIENT_PURE: "true", "process.env.NODE_ENV": '"production"' },
    plugins: [noWebCryptoShim],
    logLevel: "warning",
  });
  for (const name of (await readdir(src)).sort()) {
    if (name.endsWith(".html") || name.endsWith(".css")) await copyFile(join(src, name), join(dist, name));
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
