"use strict";
// The page's behaviour: the form's values to POST /predict, answers as named bars (a classifier) or the forecast
// in words (a regressor), why (POST /explain) as a bar per feature and class (or of the forecast), a classifier's
// full list from the v2 endpoint, the API's own validation messages beside the field they name, CSV files to
// POST /batch.
(() => {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const features = data.features;
  const regression = data.task === "regression";
  const byId = (id) => document.getElementById(id);
  const inputs = features.map((_, i) => byId(`f${i}`));
  const sliders = features.map((_, i) => byId(`f${i}-slider`));
  const names = new Map(data.classes.map((code, i) => [code, data.class_names[i]]));
  const token = byId("token");
  const form = byId("predict-form");
  const predictButton = byId("predict");
  const alertBox = byId("alert");
  const status = byId("status");
  const result = byId("result");
  const all = byId("all");
  let asked = null; // the values of the answer on show
  let listed = null; // the values the full list was loaded for
  let explaining = 0; // the latest explanation asked for: an older answer arriving late is dropped
  const byName = new Map(features.map((feature) => [feature.name, feature]));

  const percent = (p) => (p < 0.001 ? "<0.1%" : `${(p * 100).toFixed(1)}%`);
  // an amount in the target's unit as the API words it: 3 significant digits, thousands separated
  const amount = (value) => `${value.toLocaleString("en-US", { maximumSignificantDigits: 3 })} ${data.unit}`;

  function headers(contentType) {
    const sent = { "Content-Type": contentType };
    if (token && token.value.trim()) sent.Authorization = `Bearer ${token.value.trim()}`;
    return sent;
  }

  async function errorOf(response) {
    try {
      return await response.json();
    } catch {
      return { error: `the service answered HTTP ${response.status}` };
    }
  }

  sliders.forEach((slider, i) => {
    if (!slider) return;
    slider.addEventListener("input", () => { inputs[i].value = slider.value; });
    inputs[i].addEventListener("input", () => { if (inputs[i].value !== "") slider.value = inputs[i].value; });
  });

  function values() {
    const sent = {};
    features.forEach((feature, i) => {
      const input = inputs[i];
      if (feature.dtype === "bool") sent[feature.name] = input.checked;
      else sent[feature.name] = input.value.trim() === "" ? null : Number(input.value);
    });
    return sent;
  }

  // A bar: a track (class <kind>-track) holding a fill (<kind>-fill) `percent` % of its width; read by no one.
  function barTrack(kind, percent) {
    const track = document.createElement("span");
    track.className = `${kind}-track`;
    track.setAttribute("aria-hidden", "true");
    const bar = document.createElement("span");
    bar.className = `${kind}-fill`;
    bar.style.width = `${percent}%`;
    track.append(bar);
    return track;
  }

  function fill(preset) {
    features.forEach((feature, i) => {
      const value = preset.values[feature.name];
      if (feature.dtype === "bool") inputs[i].checked = Boolean(value);
      else {
        inputs[i].value = String(value);
        if (sliders[i]) sliders[i].value = String(value);
      }
    });
  }

  function clearErrors() {
    alertBox.textContent = "";
    document.querySelectorAll(".field.invalid").forEach((field) => field.classList.remove("invalid"));
    inputs.forEach((input, i) => {
      input.removeAttribute("aria-invalid");
      byId(`f${i}-error`).hidden = true;
    });
  }

  // The API names the field as `<item>.<feature>` or `<items>[i].<feature>`: show its message beside that input.
  function showError(body, response) {
    const message = body.error || `the service answered HTTP ${response ? response.status : "nothing"}`;
    const field = body.field || "";
    const i = features.findIndex((feature) => feature.name === field.split(".").pop());
    if (i >= 0) {
      const detail = message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
      const error = byId(`f${i}-error`);
      error.textContent = detail;
      error.hidden = false;
      inputs[i].setAttribute("aria-invalid", "true");
      inputs[i].closest(".field").classList.add("invalid");
      alertBox.textContent = `${features[i].label}: ${detail}`;
      inputs[i].focus();
    } else {
      alertBox.textContent = message;
      if (response && response.status === 401 && token) token.focus();
    }
  }

  function bars(list, rows, withCodes) {
    const largest = Math.max(rows[0].probability, 1e-9);
    list.replaceChildren(...rows.map((row) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.className = "bar-name";
      name.textContent = row.name;
      if (withCodes && row.code !== row.name) {
        const code = document.createElement("span");
        code.className = "bar-code";
        code.textContent = row.code;
        name.append(code);
      }
      const track = barTrack("bar", Math.max(0.5, (100 * row.probability) / largest));
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = percent(row.probability);
      item.append(name, track, value);
      return item;
    }));
  }

  async function predict() {
    clearErrors();
    const sent = values();
    predictButton.disabled = true;
    status.textContent = "Asking the model…";
    try {
      const response = await fetch("predict", { method: "POST", headers: headers("application/json"), body: JSON.stringify(sent) });
      if (!response.ok) {
        status.classList.remove("visually-hidden");
        status.textContent = asked ? "The answer below is for the values asked before." : "";
        showError(await errorOf(response), response);
        return;
      }
      const answer = await response.json();
      let headline = answer.predictions[0].answer; // a regressor's forecast, worded by the API
      if (!regression) {
        const top = answer.predictions[0].top;
        // The headline names the classes at least a quarter as likely as the first; the bars show all top-k.
        const likely = top.filter((entry) => entry.probability >= top[0].probability / 4);
        headline = data.answer_template.replace("{classes}", likely.map((entry) => entry.name).join(", "));
        bars(byId("top"), top, false);
      }
      byId("headline").textContent = headline;
      byId("answered-by").textContent = `Answered by model ${answer.model_name} version ${answer.model_version} (request ${answer.request_id}).`;
      result.hidden = false;
      status.classList.add("visually-hidden"); // the headline shows it; screen readers hear it once
      status.textContent = `${headline}. Model ${answer.model_name} version ${answer.model_version}.`;
      asked = sent;
      explain(sent);
      if (all && all.open) listAll();
      if (byId("answer").getBoundingClientRect().top > window.innerHeight) byId("answer").scrollIntoView({ behavior: "smooth" });
    } catch (error) {
      status.textContent = "";
      showError({ error: `The service did not answer (${error.message}).` });
    } finally {
      predictButton.disabled = false;
    }
  }

  function shownValue(feature, value) {
    if (!feature) return String(value);
    if (feature.dtype === "bool") return value >= 0.5 ? "yes" : "no";
    const text = Number.isInteger(value) ? value.toLocaleString() : String(Number(value.toPrecision(3)));
    return feature.unit ? `${text} ${feature.unit}` : text;
  }

  const sign = (contribution) => (contribution > 0 ? "+" : contribution < 0 ? "−" : "");

  function points(contribution) {
    const size = Math.abs(contribution * 100);
    return `${sign(contribution)}${size.toFixed(size >= 1 ? 1 : 2)} pts`;
  }

  // What an explanation shows, as whyBars draws it: per explained output (a class, or the forecast) its name,
  // its value beside the average, and the features' contributions with their amounts.
  function explained(explanation) {
    if (regression) {
      return [{
        name: "Forecast",
        detail: `${amount(explanation.prediction)} (average ${amount(explanation.base_value)})`,
        contributions: explanation.contributions,
        shown: (c) => `${sign(c)}${amount(Math.abs(c))}`,
      }];
    }
    return explanation.classes.map((entry) => ({
      name: entry.name,
      detail: `${percent(entry.probability)} (average ${percent(entry.base_probability)})`,
      contributions: entry.contributions,
      shown: points,
    }));
  }

  // One <details> per output: a bar per feature, right (green) when it raises the output, left (red) when it
  // lowers it, every bar to the scale of the largest contribution of the item explained.
  function whyBars(outputs) {
    const largest = Math.max(1e-9, ...outputs.flatMap((entry) => entry.contributions.map((c) => Math.abs(c.contribution))));
    return outputs.map((entry, index) => {
      const box = document.createElement("details");
      box.className = "why-class";
      box.open = index === 0;
      const summary = document.createElement("summary");
      const name = document.createElement("span");
      name.className = "why-class-name";
      name.textContent = entry.name;
      const detail = document.createElement("span");
      detail.className = "why-probability";
      detail.textContent = entry.detail;
      summary.append(name, detail);
      const list = document.createElement("ol");
      list.className = "why-bars";
      list.setAttribute("aria-label", `Why ${entry.name}`);
      list.replaceChildren(...entry.contributions.map((c) => {
        const item = document.createElement("li");
        item.className = c.contribution >= 0 ? "why-up" : "why-down";
        const feature = byName.get(c.feature);
        const label = document.createElement("span");
        label.className = "why-name";
        label.textContent = feature ? feature.label : c.feature;
        const value = document.createElement("span");
        value.className = "why-value";
        value.textContent = shownValue(feature, c.value);
        label.append(value);
        const track = barTrack("why", (50 * Math.abs(c.contribution)) / largest);
        const change = document.createElement("span");
        change.className = "why-amount";
        change.textContent = entry.shown(c.contribution);
        const text = document.createElement("span");
        text.className = "why-text";
        text.textContent = c.text;
        item.append(label, track, change, text);
        return item;
      }));
      box.append(summary, list);
      return box;
    });
  }

  async function explain(sent) {
    const asking = ++explaining;
    const why = byId("why");
    const whyStatus = byId("why-status");
    const whyClasses = byId("why-classes");
    why.hidden = false;
    whyClasses.replaceChildren();
    whyStatus.textContent = "Working out why…";
    try {
      const response = await fetch("explain", { method: "POST", headers: headers("application/json"), body: JSON.stringify(sent) });
      if (asking !== explaining) return;
      if (!response.ok) {
        whyStatus.textContent = `No explanation: ${(await errorOf(response)).error}`;
        return;
      }
      const answer = await response.json();
      if (asking !== explaining) return;
      whyClasses.replaceChildren(...whyBars(explained(answer.explanations[0])));
      whyStatus.textContent = `Explained by model ${answer.model_name} version ${answer.model_version}.`;
    } catch (error) {
      if (asking === explaining) whyStatus.textContent = `The service did not explain (${error.message}).`;
    }
  }

  // Every class with its probability, from the Open Inference Protocol endpoint, named from the page's data.
  async function listAll() {
    if (!asked || listed === asked) return;
    const allStatus = byId("all-status");
    allStatus.textContent = "Loading…";
    const request = {
      inputs: features.map((feature) => ({ name: feature.name, shape: [1, 1], datatype: "FP64", data: [Number(asked[feature.name])] })),
      outputs: [{ name: "probabilities" }, { name: "classes" }],
    };
    try {
      const response = await fetch(`v2/models/${encodeURIComponent(data.model.name)}/infer`, {
        method: "POST", headers: headers("application/json"), body: JSON.stringify(request),
      });
      if (!response.ok) {
        allStatus.textContent = (await errorOf(response)).error;
        return;
      }
      const [probabilities, classes] = (await response.json()).outputs;
      const rows = classes.data.map((code, i) => ({ code, name: names.get(code) || code, probability: probabilities.data[i] }));
      rows.sort((a, b) => b.probability - a.probability);
      bars(byId("all-list"), rows, true);
      allStatus.textContent = `${rows.length} ${data.class_noun}, most likely first.`;
      listed = asked;
    } catch (error) {
      allStatus.textContent = `The service did not answer (${error.message}).`;
    }
  }

  [form, byId("token-form")].forEach((submitted) => submitted && submitted.addEventListener("submit", (event) => {
    event.preventDefault();
    predict();
  }));
  if (all) all.addEventListener("toggle", () => { if (all.open) listAll(); });
  document.querySelectorAll("[data-preset]").forEach((button) => {
    button.addEventListener("click", () => {
      fill(data.presets[Number(button.dataset.preset)]);
      predict();
    });
  });

  const batchForm = byId("batch-form");
  const file = byId("csv-file");
  const batchAlert = byId("batch-alert");
  const batchStatus = byId("batch-status");
  const download = byId("batch-download");
  batchForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    batchAlert.textContent = "";
    download.hidden = true;
    const chosen = file.files[0];
    if (!chosen) {
      batchAlert.textContent = "Choose a CSV file first.";
      file.focus();
      return;
    }
    const button = batchForm.querySelector("button");
    button.disabled = true;
    batchStatus.textContent = `Scoring ${chosen.name}…`;
    try {
      const response = await fetch("batch", { method: "POST", headers: headers("text/csv"), body: chosen });
      if (!response.ok) {
        batchStatus.textContent = "";
        batchAlert.textContent = (await errorOf(response)).error;
        return;
      }
      const scored = Number(response.headers.get("x-rows-scored"));
      const rejected = Number(response.headers.get("x-rows-rejected"));
      const named = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
      if (download.href) URL.revokeObjectURL(download.href);
      download.href = URL.createObjectURL(await response.blob());
      download.download = named ? named[1] : "predictions.csv";
      download.textContent = `Download ${download.download}`;
      download.hidden = false;
      const rows = scored + rejected;
      batchStatus.textContent = `Scored ${scored.toLocaleString()} of ${rows.toLocaleString()} rows` +
        (rejected ? `; ${rejected.toLocaleString()} not scored, the error column says why.` : ".");
      download.focus();
    } catch (error) {
      batchStatus.textContent = "";
      batchAlert.textContent = `The service did not answer (${error.message}).`;
    } finally {
      button.disabled = false;
    }
  });
})();
