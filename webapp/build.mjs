// Build the browser viewer into ../termshare/web (shipped inside the Python package).
//
//   node build.mjs            build
//   node build.mjs --verify   build into a temporary directory and compare with ../termshare/web
//
// Output:
//   index.html        connect page, served at <base>/
//   session.html      viewer, served at <base>/s/<sid> (assets referenced as ../assets/…)
//   assets/app.js     the bundled viewer (xterm.js, protocol core, UI)
//   assets/app.css
//   assets/favicon.svg
//   assets/THIRD-PARTY-NOTICES.txt
//   manifest.json     SHA-256 of every file above
// No inline scripts or styles, no external URLs: the pages run under
// `default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; …`.

import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const defaultOut = resolve(here, '..', 'termshare', 'web');

const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">\
<rect x="1" y="4" width="30" height="24" rx="6" fill="#0f131b" stroke="#7aa2f7" stroke-width="2"/>\
<path d="M8 12l5 4-5 4" fill="none" stroke="#7aa2f7" stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round"/>\
<path d="M16 21h8" stroke="#e7eaf0" stroke-width="2.4" stroke-linecap="round"/></svg>
`;

const sha256 = (data) => createHash('sha256').update(data).digest('hex');

async function listFiles(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...await listFiles(path));
    else out.push(path);
  }
  return out;
}

async function bundle(outDir) {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(join(outDir, 'assets'), { recursive: true });
  const common = { bundle: true, minify: true, logLevel: 'warning', legalComments: 'none', charset: 'ascii' };
  await build({
    ...common,
    entryPoints: [join(here, 'src', 'main.js')],
    outfile: join(outDir, 'assets', 'app.js'),
    format: 'iife',
    target: ['es2022', 'chrome110', 'firefox115', 'safari16'],
    platform: 'browser',
  });
  await build({
    ...common,
    entryPoints: [join(here, 'src', 'app.css')],
    outfile: join(outDir, 'assets', 'app.css'),
    target: ['chrome110', 'firefox115', 'safari16'],
  });
  await writeFile(join(outDir, 'assets', 'favicon.svg'), FAVICON);

  const notices = [];
  for (const pkg of ['@xterm/xterm', '@xterm/addon-webgl']) {
    const dir = join(here, 'node_modules', ...pkg.split('/'));
    const { version } = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
    notices.push(`${pkg} ${version}\n\n${(await readFile(join(dir, 'LICENSE'), 'utf8')).trim()}\n`);
  }
  await writeFile(join(outDir, 'assets', 'THIRD-PARTY-NOTICES.txt'),
    `The viewer bundle (app.js, app.css) includes the following packages.\n\n${notices.join('\n' + '-'.repeat(72) + '\n\n')}`);

  // Pages: relative asset URLs (so a path prefix in front of the relay works), with a content
  // hash as query so a cached old bundle is never paired with a new page.
  const js = await readFile(join(outDir, 'assets', 'app.js'));
  const css = await readFile(join(outDir, 'assets', 'app.css'));
  const version = sha256(Buffer.concat([js, css])).slice(0, 12);
  for (const [name, assets] of [['index.html', 'assets'], ['session.html', '../assets']]) {
    const template = await readFile(join(here, name), 'utf8');
    const html = template
      .replaceAll('{{ASSETS}}/app.js', `${assets}/app.js?v=${version}`)
      .replaceAll('{{ASSETS}}/app.css', `${assets}/app.css?v=${version}`)
      .replaceAll('{{ASSETS}}', assets);
    if (html.includes('{{')) throw new Error(`${name}: unreplaced placeholder`);
    if (/<style|\sstyle=|<script(?![^>]*\ssrc=)/i.test(html)) throw new Error(`${name}: inline script or style`);
    await writeFile(join(outDir, name), html);
  }

  const files = {};
  for (const path of (await listFiles(outDir)).sort()) {
    const rel = relative(outDir, path).split(sep).join('/');
    if (rel === 'manifest.json') continue;
    files[rel] = sha256(await readFile(path));
  }
  const manifest = { format: 1, generator: 'webapp/build.mjs', files };
  await writeFile(join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

async function checkNoExternalUrls(outDir) {
  // Anything the page could fetch must be relative; flag absolute http(s) URLs in CSS url() and HTML.
  for (const name of ['index.html', 'session.html', 'assets/app.css']) {
    const text = await readFile(join(outDir, name), 'utf8');
    if (/url\(\s*['"]?(https?:)?\/\//i.test(text) || /(src|href)=["']?(https?:)?\/\//i.test(text)) {
      throw new Error(`${name} references an external URL`);
    }
  }
}

if (process.argv.includes('--verify')) {
  const tmp = await mkdtemp(join(tmpdir(), 'termshare-web-'));
  try {
    const fresh = await bundle(join(tmp, 'web'));
    const existing = JSON.parse(await readFile(join(defaultOut, 'manifest.json'), 'utf8'));
    const a = JSON.stringify(fresh.files);
    const b = JSON.stringify(existing.files);
    for (const [name, hash] of Object.entries(existing.files)) {
      if (sha256(await readFile(join(defaultOut, name))) !== hash) {
        console.error(`termshare/web/${name} does not match its manifest entry`);
        process.exit(1);
      }
    }
    if (a !== b) {
      console.error('termshare/web does not match a fresh build of webapp/ (run npm run build)');
      process.exit(1);
    }
    console.log('termshare/web matches the sources');
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
} else {
  const manifest = await bundle(defaultOut);
  await checkNoExternalUrls(defaultOut);
  for (const [name, hash] of Object.entries(manifest.files)) {
    console.log(`${hash.slice(0, 16)}  termshare/web/${name}`);
  }
}
