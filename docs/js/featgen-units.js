// Gallery units from galleries/units.json (a few tens of KB for the full plan): its layers, the units
// each renders, and how a layer's overview sheets are laid out.
//
// Search: the search index holds the layer pages only (tens of thousands of unit pages would make it
// megabytes); a query that names a layer and a unit number, with or without the model and backend
// ("vgg16_hed tensorflow block3_conv1 2", "block3_conv1 unit 2"), lists those unit pages above the
// search results, each saying model, backend, layer and unit.
//
// Tiles: a link to a unit page in a row of links (.fg-linkrow) gets the unit's tile, cut from its
// layer's overview sheet. The page holds the link and its number only: the tile's sheet and place in
// it would cost about 80 bytes a link on every one of the gallery's unit pages.
(() => {
  const root = () => (typeof __md_scope !== "undefined" ? __md_scope : new URL("./", location));
  let units = null;
  const load = () => units || (units = fetch(new URL("galleries/units.json", root()))
    .then(r => (r.ok ? r.json() : { layers: [] })).catch(() => ({ layers: [] })));
  const aliases = { tf: "tensorflow", keras: "tensorflow", pytorch: "torch" };
  const has = (ranges, u) => ranges.some(([a, b]) => a <= u && u <= b);

  function find(query, rows) {
    const words = query.toLowerCase().split(/[\s·,|]+/).filter(Boolean)
      .map(w => w.replace(/^unit-?(\d+)$/, "$1")).filter(w => w !== "unit");
    const numbers = words.filter(w => /^\d+$/.test(w));
    const names = words.filter(w => !/^\d+$/.test(w)).map(w => aliases[w] || w);
    if (numbers.length !== 1 || !names.length) return [];
    const unit = Number(numbers[0]);
    return rows.filter(r => {
      const fields = [r.model, r.backend, r.layer].map(s => s.toLowerCase());
      return names.some(w => fields[2] === w || (w.length > 2 && fields[2].includes(w)))
        && names.every(w => fields.some(f => f === w || (w.length > 2 && f.includes(w))))
        && has(r.units, unit);
    }).slice(0, 12).map(r => ({ ...r, unit }));
  }

  function show(found) {
    const result = document.querySelector(".md-search-result");
    if (!result) return;
    let list = result.querySelector(".fg-search-units");
    if (!found.length) { if (list) list.remove(); return; }
    if (!list) {
      list = document.createElement("ol");
      list.className = "md-search-result__list fg-search-units";
      result.insertBefore(list, result.querySelector(".md-search-result__list"));
    }
    list.replaceChildren(...found.map(r => {
      const li = document.createElement("li");
      li.className = "md-search-result__item";
      const a = document.createElement("a");
      a.className = "md-search-result__link";
      a.href = new URL(`galleries/${r.path}unit-${r.unit}/`, root()).href;
      const article = document.createElement("article");
      article.className = "md-search-result__article md-typeset";
      const h = document.createElement("h1");
      h.textContent = `${r.layer} · unit ${r.unit}`;
      const p = document.createElement("p");
      p.textContent = `${r.model} · ${r.backend} · ${r.layer} · unit ${r.unit} (${r.type})`;
      article.append(h, p);
      a.append(article);
      li.append(a);
      return li;
    }));
  }

  document.addEventListener("input", event => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.matches("[data-md-component=search-query]")) return;
    const query = input.value;
    load().then(data => { if (input.value === query) show(find(query, data.layers)); });
  });
  // The place of unit u among a layer's units (inclusive ranges, in order), or -1.
  function position(ranges, u) {
    let before = 0;
    for (const [a, b] of ranges) {
      if (a <= u && u <= b) return before + u - a;
      before += b - a + 1;
    }
    return -1;
  }

  function tiles() {
    const anchors = Array.from(document.querySelectorAll(".fg-linkrow > a[href]"));
    if (!anchors.length) return;
    load().then(({ sheet, layers }) => {
      if (!sheet) return;
      const byFolder = new Map(layers.map(r => [new URL(`galleries/${r.path}`, root()).href, r]));
      for (const a of anchors) {
        const m = a.href.match(/^(.*\/)unit-(\d+)\/$/);
        const layer = m && byFolder.get(m[1]);
        const i = layer ? position(layer.units, Number(m[2])) : -1;
        if (i < 0 || a.querySelector("img")) continue;
        const n = layer.units.reduce((sum, [lo, hi]) => sum + hi - lo + 1, 0);
        const k = Math.floor(i / sheet.units);
        const cols = Math.min(sheet.columns, n - k * sheet.units);
        const at = i - k * sheet.units;
        const img = document.createElement("img");
        img.alt = "";
        img.loading = "lazy";
        img.src = new URL(`sheet-${k}.webp`, m[1]).href;
        img.style.setProperty("--c", at % cols);
        img.style.setProperty("--r", Math.floor(at / cols));
        a.prepend(img);
        a.classList.add("fg-tiled");
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", tiles);
  else tiles();
})();
