// Gallery units in the site's search. The search index holds the layer pages only (tens of thousands
// of unit pages would make it megabytes); a query that names a layer and a unit number, with or
// without the model and backend ("vgg16_hed tensorflow block3_conv1 2", "block3_conv1 unit 2"),
// lists those unit pages above the search results, each saying model, backend, layer and unit.
// The layers and their units come from galleries/units.json (a few KB for the full plan).
(() => {
  const root = () => (typeof __md_scope !== "undefined" ? __md_scope : new URL("./", location));
  let units = null;
  const load = () => units || (units = fetch(new URL("galleries/units.json", root()))
    .then(r => (r.ok ? r.json() : [])).catch(() => []));
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
    load().then(rows => { if (input.value === query) show(find(query, rows)); });
  });
})();
