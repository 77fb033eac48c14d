// Evaluated by newsletter/toolchecks.py in headless Chromium (Playwright's page.evaluate).
(dark) => {
  const parse = (c) => { const m = c.match(/[\d.]+/g) || [0, 0, 0, 0]; return m.length > 3 ? m.map(Number) : [...m.map(Number), 1]; };
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (el) => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) return c; } return dark ? [18, 18, 18, 1] : [255, 255, 255, 1]; };
  const visible = (el) => { for (let e = el; e; e = e.parentElement) { const s = getComputedStyle(e);
    if (s.display === 'none' || s.visibility === 'hidden' || e.getAttribute('aria-hidden') === 'true') return false; }
    return el.getClientRects().length > 0; };
  const low = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) { const el = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || !visible(el)) continue;
    const s = getComputedStyle(el); const fg = parse(s.color), bg = background(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x); const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(s.fontSize); const large = size >= 24 || (size >= 18.66 && parseInt(s.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) low.add(`${el.tagName.toLowerCase()} "${walker.currentNode.textContent.trim().slice(0, 30)}":
      ${s.color} on rgb(${bg.slice(0, 3).join(', ')}) is ${ratio.toFixed(2)}:1`.replace(/\s+/g, ' ')); }
  return [...low];
}
