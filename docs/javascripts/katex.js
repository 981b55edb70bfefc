// Render the formulas that pymdownx.arithmatex (generic mode) leaves as \( \) and \[ \],
// with the KaTeX copy under docs/assets/katex (no CDN: the site reads offline).
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
    throwOnError: false,
  });
});
