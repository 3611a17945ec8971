/**
 * ftkit in JupyterLab: a launcher item that creates a notebook from ftkit's
 * quickstart, and a left side panel listing runs with Dashboard and Stop.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, showErrorMessage } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { LabIcon } from '@jupyterlab/ui-components';

import { listRuns, quickstartTemplate, stopRun } from './api';
import { RunsPanel } from './panel';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16">
  <g class="jp-icon3" fill="#616161">
    <rect x="3" y="13" width="4" height="8" rx="1"/>
    <rect x="10" y="8" width="4" height="13" rx="1"/>
    <rect x="17" y="3" width="4" height="18" rx="1"/>
  </g>
</svg>`;

export const ftkitIcon = new LabIcon({ name: 'ftkit-lab:runs', svgstr: ICON_SVG });

/** The launcher's Notebook section shows kernel-style images, so the card gets its own picture. */
const LAUNCHER_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 52 52">
  <rect width="52" height="52" rx="8" fill="#f37726"/>
  <rect x="9" y="30" width="8" height="13" rx="1.5" fill="#fff"/>
  <rect x="22" y="22" width="8" height="21" rx="1.5" fill="#fff"/>
  <rect x="35" y="12" width="8" height="31" rx="1.5" fill="#fff"/>
  <path d="M8 11 C 16 11, 20 22, 44 24" stroke="#fff" stroke-width="2.5" fill="none" stroke-linecap="round"/>
</svg>`;
const LAUNCHER_ICON_URL = `data:image/svg+xml,${encodeURIComponent(LAUNCHER_SVG)}`;

export namespace CommandIDs {
  export const newNotebook = 'ftkit:new-notebook';
  export const openDashboard = 'ftkit:open-dashboard';
  export const stopRun = 'ftkit:stop-run';
  export const showRuns = 'ftkit:show-runs';
}

const PANEL_ID = 'ftkit-runs';

/** A Python string literal for any text (JSON's escapes are valid in Python). */
const py = (text: string): string => JSON.stringify(text);

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'ftkit-lab:plugin',
  description: 'Fine-tuning notebook launcher item and the ftkit runs panel.',
  autoStart: true,
  optional: [ILauncher, IDefaultFileBrowser, ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    launcher: ILauncher | null,
    browser: IDefaultFileBrowser | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const { commands, serviceManager, shell } = app;

    commands.addCommand(CommandIDs.newNotebook, {
      label: 'Fine-tuning notebook',
      caption: 'A new notebook from ftkit\u2019s quickstart: the form, a short run and its live dashboard',
      icon: args => (args['isPalette'] ? undefined : ftkitIcon),
      execute: async args => {
        const cwd = (args['cwd'] as string) ?? browser?.model.path ?? '';
        try {
          const template = await quickstartTemplate();
          const contents = serviceManager.contents;
          const model = await contents.newUntitled({ path: cwd, type: 'notebook' });
          await contents.save(model.path, {
            type: 'notebook',
            format: 'json',
            content: template.content
          });
          return await commands.execute('docmanager:open', {
            path: model.path,
            factory: 'Notebook'
          });
        } catch (error) {
          void showErrorMessage('Could not create the fine-tuning notebook', error as Error);
        }
      }
    });

    commands.addCommand(CommandIDs.openDashboard, {
      label: args => (args['id'] ? `ftkit dashboard for ${args['id']}` : 'ftkit dashboard'),
      caption: 'Open a console showing the live dashboard of a run',
      execute: async args => {
        const id = args['id'] as string;
        try {
          const { runs_dir } = await listRuns();
          const code = [
            'from ftkit import Controller',
            'from ftkit.widgets import Dashboard',
            '',
            `Dashboard.attach(${py(id)}, Controller(${py(runs_dir)}))`
          ].join('\n');
          const panel: any = await commands.execute('console:create', {
            name: `ftkit ${id}`,
            kernelPreference: { name: 'python3', language: 'python' },
            activate: true
          });
          await panel.sessionContext.ready;
          await panel.console.inject(code);
          return panel;
        } catch (error) {
          void showErrorMessage('Could not open the run\u2019s dashboard', error as Error);
        }
      }
    });

    commands.addCommand(CommandIDs.stopRun, {
      label: args => (args['id'] ? `Stop ftkit run ${args['id']}` : 'Stop ftkit run'),
      execute: async args => {
        try {
          return await stopRun(args['id'] as string);
        } catch (error) {
          void showErrorMessage('Could not stop the run', error as Error);
        }
      }
    });

    const panel = new RunsPanel({
      openDashboard: id => commands.execute(CommandIDs.openDashboard, { id }),
      stop: id => commands.execute(CommandIDs.stopRun, { id }),
      newNotebook: () =>
        commands.execute(CommandIDs.newNotebook, { cwd: browser?.model.path ?? '' })
    });
    panel.id = PANEL_ID;
    panel.title.icon = ftkitIcon;
    panel.title.caption = 'ftkit runs';
    shell.add(panel, 'left', { rank: 650 });
    if (restorer) {
      restorer.add(panel, PANEL_ID);
    }

    commands.addCommand(CommandIDs.showRuns, {
      label: 'Show ftkit runs',
      execute: () => shell.activateById(PANEL_ID)
    });

    if (launcher) {
      launcher.add({
        command: CommandIDs.newNotebook,
        category: 'Notebook',
        rank: 3,
        kernelIconUrl: LAUNCHER_ICON_URL
      });
    }
    if (palette) {
      palette.addItem({ command: CommandIDs.newNotebook, category: 'ftkit', args: { isPalette: true } });
      palette.addItem({ command: CommandIDs.showRuns, category: 'ftkit' });
    }
  }
};

export default plugin;
