// Texts whose contrast with the colour behind them is under 4.5:1 (WCAG 2 relative
// luminance). Semi-transparent backgrounds are blended onto what lies beneath;
// text that is not rendered, or is visually hidden, is left out.
() => {
  const parse = (text) => {
    const parts = (text.match(/rgba?\(([^)]+)\)/) || [])[1];
    if (!parts) return null;
    const [r, g, b, a] = parts.split(/[\s,/]+/).filter(Boolean).map(Number);
    return { r, g, b, a: a === undefined ? 1 : a };
  };
  const blend = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const luminance = ({ r, g, b }) => {
    const channel = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const backgroundOf = (element) => {
    const layers = [];
    for (let node = element; node; node = node.parentElement) {
      const colour = parse(getComputedStyle(node).backgroundColor);
      if (colour && colour.a > 0) {
        layers.push(colour);
        if (colour.a >= 1) break;
      }
    }
    return layers.reverse().reduce((under, layer) => blend(layer, under),
      { r: 255, g: 255, b: 255, a: 1 });
  };
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const element = walker.currentNode.parentElement;
    const text = walker.currentNode.textContent.trim();
    const box = element.getBoundingClientRect();
    if (!text || !element.checkVisibility() || box.width <= 1 || box.height <= 1) {
      continue;
    }
    const background = backgroundOf(element);
    const colour = blend(parse(getComputedStyle(element).color), background);
    const pair = [luminance(colour), luminance(background)];
    const [light, dark] = pair.sort((x, y) => y - x);
    const ratio = (light + 0.05) / (dark + 0.05);
    if (ratio < 4.5) {
      const where = element.className || element.tagName;
      found.push(`${text.slice(0, 40)} (${where}): ${ratio.toFixed(2)}`);
    }
  }
  return found;
}
