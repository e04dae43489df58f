// Let xterm.js style itself under a strict Content-Security-Policy (`style-src 'self'`).
//
// CSP allows styles set through the CSSOM (`el.style.color = …`, constructed stylesheets), but
// blocks `<style>` elements with inline text and `style="…"` attributes. xterm.js uses both:
// its DOM renderer (the fallback when WebGL is unavailable) injects its theme, font and colour
// classes through `<style>` elements, and writes 24-bit colours with setAttribute('style', …);
// its scrollbar colours also come from a `<style>` element. This shim routes both through the
// CSSOM, so nothing needs 'unsafe-inline':
//   * document.createElement('style') returns an inert <termshare-style> element instead, whose
//     text is mirrored into a constructed stylesheet adopted by the document;
//   * setAttribute('style', text) on an HTML element becomes `el.style.cssText = text`.
// Install it before creating the terminal.

const MIRROR_TAG = 'termshare-style';
let installed = false;

export function installCspStyleShim() {
  if (installed) return;
  installed = true;

  const origSetAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function setAttribute(name, value) {
    // Runs on every setAttribute() in the page, the renderer's included: the cheap tests first.
    if (typeof name === 'string' && name.length === 5 && name.toLowerCase() === 'style' && this instanceof HTMLElement) {
      this.style.cssText = String(value);
      return;
    }
    return origSetAttribute.call(this, name, value);
  };

  const canAdopt = 'adoptedStyleSheets' in Document.prototype && typeof CSSStyleSheet === 'function'
    && typeof CSSStyleSheet.prototype.replaceSync === 'function';
  if (!canAdopt) return;

  /** @type {WeakMap<Element, CSSStyleSheet>} */
  const sheets = new WeakMap();
  /** @param {Element} el */
  const sheetOf = (el) => {
    let sheet = sheets.get(el);
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheets.set(el, sheet);
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    }
    return sheet;
  };
  /** @param {Element} el */
  const sync = (el) => {
    if (!el.isConnected) return; // removed before this (asynchronous) mirror ran
    try { sheetOf(el).replaceSync(el.textContent ?? ''); } catch { /* malformed CSS: keep the old rules */ }
  };
  const observer = new MutationObserver((records) => {
    const seen = new Set();
    for (const r of records) {
      const el = r.target instanceof Element ? r.target : r.target.parentElement;
      if (el && el.localName === MIRROR_TAG && !seen.has(el)) {
        seen.add(el);
        sync(el);
      }
    }
  });

  const origCreateElement = Document.prototype.createElement;
  Document.prototype.createElement = function createElement(tagName, options) {
    // Called for every span the DOM renderer draws: the cheap tests first, no string made per call.
    if (this === document && typeof tagName === 'string' && tagName.length === 5 && tagName.toLowerCase() === 'style') {
      // An inert element instead of <style> (browsers report a CSP violation for any inline
      // <style>, whatever its type); app.css hides it. `sheet` is the mirrored stylesheet, for
      // code that calls sheet.insertRule().
      const el = origCreateElement.call(this, MIRROR_TAG);
      Object.defineProperty(el, 'sheet', { get: () => sheetOf(el) });
      // xterm.js drops its style elements with remove() (renderer switch, dispose): drop the rules.
      el.remove = function remove() {
        const sheet = sheets.get(el);
        if (sheet) {
          sheets.delete(el);
          document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
        }
        Element.prototype.remove.call(el);
      };
      observer.observe(el, { childList: true, characterData: true, subtree: true });
      return el;
    }
    return origCreateElement.call(this, tagName, options);
  };
}
