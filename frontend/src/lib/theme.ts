// Theme: TensorBoard toggles `dark-mode` on the parent page's <body> and does not theme
// third-party iframes, so the tab watches that class itself (falling back to the iframe's own
// prefers-color-scheme when the parent is unreachable) and paints its own background and font.

export function watchDarkMode(onChange: (dark: boolean) => void): void {
  try {
    const body = window.parent !== window ? window.parent.document.body : null;
    if (body) {
      let last = body.classList.contains("dark-mode");
      onChange(last);
      new MutationObserver(() => {
        const dark = body.classList.contains("dark-mode");
        if (dark !== last) {
          last = dark;
          onChange(dark);
        }
      }).observe(body, { attributes: true, attributeFilter: ["class"] });
      return;
    }
  } catch {
    // Cross-origin or detached parent: use the media query below.
  }
  const query = window.matchMedia("(prefers-color-scheme: dark)");
  onChange(query.matches);
  query.addEventListener("change", (e) => onChange(e.matches));
}

/**
 * Font faces are per document and TensorBoard declares Roboto only in the parent page, so copy its
 * Roboto @font-face rules into this iframe (URLs made absolute; same origin, so font-src 'self'
 * allows them). Best effort: the CSS font stack falls back to Helvetica Neue / Arial.
 */
export function adoptParentFonts(): void {
  try {
    if (window.parent === window) return;
    const parentDoc = window.parent.document;
    const rules: string[] = [];
    for (const sheet of Array.from(parentDoc.styleSheets)) {
      let cssRules: CSSRuleList;
      try {
        cssRules = sheet.cssRules;
      } catch {
        continue;
      }
      const base = sheet.href ?? parentDoc.baseURI;
      for (const rule of Array.from(cssRules)) {
        if (rule.constructor.name !== "CSSFontFaceRule" && rule.type !== 5) continue;
        const style = (rule as CSSFontFaceRule).style;
        const family = style.getPropertyValue("font-family").replace(/["']/g, "").trim();
        if (!/^Roboto( Mono)?$/i.test(family)) continue;
        const text = rule.cssText.replace(/url\((["']?)([^"')]+)\1\)/g, (_m, _q, u: string) => {
          try {
            return `url("${new URL(u, base).href}")`;
          } catch {
            return `url("${u}")`;
          }
        });
        rules.push(text);
      }
    }
    if (rules.length) {
      const style = document.createElement("style");
      style.dataset.insight = "fonts";
      style.textContent = rules.join("\n");
      document.head.appendChild(style);
    }
  } catch {
    // Parent not reachable: keep the fallback fonts.
  }
}
