// Evaluated by newsletter/checks/chromium.py in headless Chromium (Playwright's page.evaluate): one walk over the
// visible text of the email, measuring what the layout and contrast checks need.
({ minFont, dark }) => {
  const doc = document.documentElement;
  const visible = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === 'none' || s.visibility === 'hidden' || e.getAttribute('aria-hidden') === 'true') return false;
    }
    return el.getClientRects().length > 0;
  };
  const parse = (c) => {
    const m = c.match(/[\d.]+/g) || [0, 0, 0, 0];
    return m.length > 3 ? m.map(Number) : [...m.map(Number), 1];
  };
  const luminance = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) return c;
    }
    return dark ? [18, 18, 18, 1] : [255, 255, 255, 1];  // Chromium's canvas in each scheme
  };
  const describe = (el, text) => `${el.tagName.toLowerCase()} "${text.trim().slice(0, 40)}"`.replace(/\s+/g, ' ');

  const small = new Set();
  const low = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    const text = walker.currentNode.textContent;
    if (!text.trim() || !visible(el)) continue;
    const s = getComputedStyle(el);
    const size = parseFloat(s.fontSize);
    if (size < minFont) small.add(`${describe(el, text)} at ${size}px`);
    const bg = background(el);
    const [a, b] = [luminance(parse(s.color)), luminance(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const large = size >= 24 || (size >= 18.66 && parseInt(s.fontWeight) >= 700);  // WCAG "large text"
    if (ratio < (large ? 3 : 4.5)) {
      low.add(`${describe(el, text)}: ${s.color} on rgb(${bg.slice(0, 3).join(', ')}) is ${ratio.toFixed(2)}:1`);
    }
  }
  const wide = [...document.images]
    .filter((i) => visible(i) && i.getBoundingClientRect().right > doc.clientWidth + 0.5)
    .map((i) => ({ src: i.getAttribute('src') || '', alt: i.alt, width: Math.round(i.getBoundingClientRect().width) }));
  // The content column: the widest box around the first heading that is narrower than the window.
  let column = null;
  for (let e = document.querySelector('h1'); e && e !== document.body; e = e.parentElement) {
    const r = e.getBoundingClientRect();
    if (r.width < doc.clientWidth - 1) column = { left: r.left, right: r.right, width: r.width };
  }
  return { scrollWidth: doc.scrollWidth, viewport: doc.clientWidth, small: [...small], low: [...low], wide, column };
}
