// Evaluated by newsletter/toolchecks.py in headless Chromium (Playwright's page.evaluate).
(minFont) => {
  const doc = document.documentElement;
  const visible = (el) => { for (let e = el; e; e = e.parentElement) { const s = getComputedStyle(e);
    if (s.display === 'none' || s.visibility === 'hidden' || e.getAttribute('aria-hidden') === 'true') return false; }
    return el.getClientRects().length > 0; };
  const small = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) { const el = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || !visible(el)) continue;
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (size < minFont) small.add(`${el.tagName.toLowerCase()}${el.className ? '.' + el.className : ''} at ${size}px:
      "${walker.currentNode.textContent.trim().slice(0, 40)}"`.replace(/\s+/g, ' ')); }
  const wide = [...document.images].filter(i => visible(i) && i.getBoundingClientRect().right > doc.clientWidth + 0.5)
    .map(i => `${i.alt || i.src.slice(0, 40)} is ${Math.round(i.getBoundingClientRect().width)}px wide`);
  const heading = document.querySelector('h1');
  let column = null;
  for (let e = heading; e && e !== document.body; e = e.parentElement) {
    const r = e.getBoundingClientRect(); if (r.width < doc.clientWidth - 1) column = r; }
  return { scrollWidth: doc.scrollWidth, small: [...small], wide,
           column: column && { left: column.left, right: column.right, width: column.width }, viewport: doc.clientWidth };
}
