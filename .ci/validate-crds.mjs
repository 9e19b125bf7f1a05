// Validates the chart's custom resources against their CRDs' OpenAPI schemas, as compiled into
// the @kubernetes-models packages (types, enums, formats and required fields; unlike
// kubernetes-validate --strict, unknown fields are not rejected).
//   node validate-crds.mjs MODELS_DIR CRDS.json...   (MODELS_DIR: where npm installed the models)
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const MODELS = {
  "keda.sh/v1alpha1/ScaledObject": "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject.js",
  "keda.sh/v1alpha1/TriggerAuthentication": "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication.js",
  "monitoring.coreos.com/v1/ServiceMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js",
  "monitoring.coreos.com/v1/PrometheusRule": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule.js",
};

const [modelsDir, ...files] = process.argv.slice(2);
if (!modelsDir || files.length === 0) {
  console.error("usage: node validate-crds.mjs MODELS_DIR CRDS.json...");
  process.exit(2);
}
let failed = 0;
let checked = 0;
for (const file of files) {
  for (const resource of JSON.parse(readFileSync(file, "utf8"))) {
    const id = `${resource.apiVersion}/${resource.kind}`;
    const label = `${file}: ${resource.kind}/${resource.metadata?.name}`;
    const modulePath = MODELS[id] && path.join(modelsDir, "node_modules", MODELS[id]);
    if (!modulePath || !existsSync(modulePath)) {
      console.log(`ERROR ${label}: no schema for ${id}`);
      failed++;
      continue;
    }
    const Model = (await import(pathToFileURL(modulePath).href))[resource.kind];
    try {
      new Model(resource).validate();
      console.log(`ok    ${label} against ${id}`);
      checked++;
    } catch (error) {
      console.log(`ERROR ${label}: ${error.message}`);
      failed++;
    }
  }
}
console.log(`${checked} custom resources valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
