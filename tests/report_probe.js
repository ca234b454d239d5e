// Evaluated in the Snakemake HTML report by tests/test_report_browser.py (headless Chromium,
// DevTools protocol): reads the page as a reader would (the landing page, then every category
// -> subcategory -> result through the report's own navigation, showing each result the way
// its "eye" button does) and resolves to what it saw, as a JSON string.
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const out = { landing: {}, results: {}, errors: [] };
  window.addEventListener("error", (ev) => out.errors.push(String(ev.message)));
  try {
    await sleep(200);
    // ---- landing page: the global description (workflow.rst)
    const text = document.body.innerText;
    out.landing.found_at = text.indexOf("What this run found");
    out.landing.config_at = text.indexOf("Run configuration");
    out.landing.has_comparison_table = !!document.querySelector("table.comparison");
    out.landing.comparison_rows = document.querySelectorAll("table.comparison tbody tr").length;
    const thumbs = Array.from(document.querySelectorAll("img[alt]")).filter((im) =>
      im.src.startsWith("data:image/png")
    );
    for (const im of thumbs) {
      if (!im.complete) await im.decode().catch(() => {});
    }
    out.landing.thumbnails = thumbs.map((im) => ({
      alt: im.alt,
      width: im.naturalWidth,
      height: im.naturalHeight,
      link: im.closest("a") ? im.closest("a").getAttribute("href") : null,
    }));
    // a thumbnail's link opens its figure's entry in the report
    for (const t of out.landing.thumbnails) {
      const im = thumbs.find((i) => i.alt === t.alt);
      if (im.closest("a")) {
        im.closest("a").click();
        await sleep(100);
      }
      t.opens = app.state.navbarMode === "resultinfo" ? app.state.resultPath : null;
    }
    out.landing.json_blocks = document.querySelectorAll("pre.code.json, pre.json").length;
    out.landing.text_length = text.length;

    // ---- every result, through the navigation
    const inkOf = async (uri) => {
      const im = new Image();
      im.src = uri;
      await im.decode();
      const w = Math.min(im.naturalWidth, 800);
      const h = Math.round((im.naturalHeight * w) / im.naturalWidth);
      const cv = document.createElement("canvas");
      cv.width = w;
      cv.height = h;
      const ctx = cv.getContext("2d");
      ctx.drawImage(im, 0, 0, w, h);
      const px = ctx.getImageData(0, 0, w, h).data;
      let ink = 0;
      for (let i = 0; i < px.length; i += 4) {
        if (px[i] + px[i + 1] + px[i + 2] < 3 * 255 - 30 && px[i + 3] > 0) ink++;
      }
      return { width: im.naturalWidth, height: im.naturalHeight, ink: ink / (w * h) };
    };
    // like a reader: back to the menu, click the category, click the subcategory (when there
    // are several), find the result's row and click its "eye" button
    const toMenu = async () => {
      app.setView({ navbarMode: "menu", category: undefined, subcategory: undefined });
      await sleep(100);
    };
    const click = async (label) => {
      const link = Array.from(document.querySelectorAll("#app a")).find(
        (a) => a.innerText.trim() === label
      );
      if (!link) return false;
      link.click();
      await sleep(100);
      return true;
    };
    const openSubcategory = async (category, subcategory) => {
      await toMenu();
      if (!(await click(category))) return false;
      if (Object.keys(categories[category]).length > 1) return await click(subcategory);
      return true;
    };
    for (const category of Object.keys(categories)) {
      for (const subcategory of Object.keys(categories[category])) {
        for (const path of categories[category][subcategory]) {
          const entry = results[path];
          const rec = { category: category, subcategory: subcategory, mime: entry.mime_type };
          rec.reached = await openSubcategory(category, subcategory);
          const wanted = [path, entry.name, ...Object.values(entry.labels || {}).map(String)];
          const row = Array.from(document.querySelectorAll("#app tr")).find((tr) => {
            const cells = Array.from(tr.querySelectorAll("td")).map((td) => td.innerText.trim());
            return cells.length > 1 && cells.slice(0, -1).every((c) => wanted.includes(c));
          });
          rec.listed = !!row;
          const eye = row ? row.querySelector("td:last-child a") : null;
          if (entry.mime_type.startsWith("image/")) {
            if (eye) {
              eye.click();
              await sleep(100);
            }
            const shown = Array.from(document.querySelectorAll("#app img")).find(
              (im) => im.getAttribute("src") === entry.data_uri
            );
            rec.shown = !!shown;
            if (shown && !shown.complete) await shown.decode().catch(() => {});
            rec.shown_width = shown ? shown.naturalWidth : 0;
            Object.assign(rec, await inkOf(entry.data_uri));
          } else {
            // tables: the eye button is a download link to the embedded file
            rec.shown = !!eye && eye.getAttribute("href") === entry.data_uri;
            const body = await (await fetch(entry.data_uri)).text();
            rec.bytes = body.length;
            rec.lines = body.split("\n").filter((l) => l.trim()).length;
          }
          rec.caption_length = (entry.caption || "").length;
          out.results[path] = rec;
        }
      }
    }
  } catch (err) {
    out.errors.push(String(err && err.stack ? err.stack : err));
  }
  return JSON.stringify(out);
})()
