// Loaded by ComfyUI's frontend from /extensions/web_routes/web_routes.js
import { app } from "../../scripts/app.js";
app.registerExtension({ name: "nodegraph.test.web_routes" });
