// A notebook output area without a notebook: Jupyter widgets rendered by @jupyter-widgets/html-manager on a
// live kernel (jupyter_server's kernel websocket through @jupyterlab/services). Third-party widget modules
// (anything beyond base, controls and output) load only as AMD modules from the kernel environment's
// share/jupyter/nbextensions/<module>/index.js, as VS Code's notebook renderer loads them: no CDN, no lab
// extensions. A module whose files are not there fails to load, the way it fails in VS Code.
//
// Query string: server (the Jupyter server's URL), token, widgets (the URL serving nbextensions/).
// The page exposes window.ftkitPage.run(code), which executes code and shows its outputs.
import * as base from '@jupyter-widgets/base';
import * as controls from '@jupyter-widgets/controls';
import { HTMLManager } from '@jupyter-widgets/html-manager';
import { KernelManager, ServerConnection } from '@jupyterlab/services';

const WIDGET_VIEW = 'application/vnd.jupyter.widget-view+json';

function nbextensionLoader(widgetsUrl) {
  return (moduleName, moduleVersion) => new Promise((resolve, reject) => {
    window.requirejs.config({ paths: { [moduleName]: `${widgetsUrl}/${moduleName}/index` } });
    window.requirejs([moduleName], resolve, (err) => {
      window.requirejs.undef(moduleName);
      reject(new Error(`widget module ${moduleName}@${moduleVersion} is not installed in the kernel's nbextensions: ${err}`));
    });
  });
}

class KernelWidgetManager extends HTMLManager {
  constructor(kernel, loader) {
    super({ loader });
    this.kernel = kernel;
    kernel.registerCommTarget(this.comm_target_name, async (comm, msg) => {
      await this.handle_comm_open(new base.shims.services.Comm(comm), msg);
    });
  }

  async _create_comm(targetName, modelId, data, metadata, buffers) {
    const comm = this.kernel.createComm(targetName, modelId);
    if (data || metadata) comm.open(data, metadata, buffers);
    return new base.shims.services.Comm(comm);
  }

  async _get_comm_info() {
    const reply = await this.kernel.requestCommInfo({ target_name: this.comm_target_name });
    return reply.content.comms;
  }
}

function showText(area, text, className) {
  const pre = document.createElement('pre');
  pre.className = className;
  pre.textContent = text;
  area.appendChild(pre);
}

async function showOutput(manager, area, msg) {
  const type = msg.header.msg_type;
  const content = msg.content;
  if ((type === 'display_data' || type === 'execute_result') && content.data[WIDGET_VIEW]) {
    const model = await manager.get_model(content.data[WIDGET_VIEW].model_id);
    const box = document.createElement('div');
    box.className = 'widget-output';
    area.appendChild(box);
    await manager.display_view(manager.create_view(model), box);
  } else if (type === 'display_data' || type === 'execute_result') {
    showText(area, content.data['text/plain'] || '', 'text-output');
  } else if (type === 'stream') {
    showText(area, content.text, `stream-${content.name}`);
  } else if (type === 'error') {
    showText(area, content.traceback.join('\n').replace(/\x1b\[[0-9;]*m/g, ''), 'error-output');
  }
}

async function main() {
  // require.js loads after this bundle (UMD code inside the bundle would otherwise register itself with it);
  // AMD modules such as anywidget's nbextension ask it for the stock ipywidgets packages.
  window.define('@jupyter-widgets/base', [], () => base);
  window.define('@jupyter-widgets/controls', [], () => controls);
  const query = new URLSearchParams(window.location.search);
  const server = query.get('server');
  const serverSettings = ServerConnection.makeSettings({
    baseUrl: server, wsUrl: server.replace(/^http/, 'ws'), token: query.get('token'), appendToken: true,
  });
  const kernels = new KernelManager({ serverSettings });
  const kernel = await kernels.startNew({ name: 'python3' });
  const manager = new KernelWidgetManager(kernel, nbextensionLoader(query.get('widgets')));
  const outputs = document.getElementById('outputs');
  window.ftkitPage = {
    kernel,
    async run(code) {
      const area = document.createElement('div');
      area.className = 'cell-outputs';
      outputs.appendChild(area);
      const future = kernel.requestExecute({ code });
      future.onIOPub = (msg) => showOutput(manager, area, msg).catch((err) => showText(area, String(err), 'error-output'));
      const reply = await future.done;
      return reply.content.status;
    },
  };
  await kernel.info;
  document.getElementById('status').textContent = 'kernel ready';
}

window.addEventListener('DOMContentLoaded', () => main().catch((err) => {
  document.getElementById('status').textContent = `failed: ${err}`;
  console.error(err);
}));
