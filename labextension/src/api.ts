/**
 * Calls to ftkit's Jupyter server extension (`<base_url>/ftkit/...`), through
 * JupyterLab's own server connection so token and XSRF headers come along.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IBest {
  metric: string;
  value: number;
  step?: number;
}

export interface IRunRow {
  id: string;
  status: string;
  method: string;
  task: string;
  model?: string;
  best: IBest | null;
  started: number;
  steps: number | null;
  max_steps: number | null;
  reason?: string | null;
}

export interface IRunList {
  runs_dir: string;
  runs: IRunRow[];
}

/** Statuses in which a run can still be stopped. */
export const ACTIVE = ['queued', 'starting', 'running', 'paused', 'stopping'];

export async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'ftkit', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = text;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    // not JSON: keep the text for the message below
  }
  if (!response.ok) {
    const message =
      (data && data.message) ||
      `${response.status} ${response.statusText}: is ftkit's server extension enabled? (jupyter server extension list)`;
    throw new Error(message);
  }
  return data as T;
}

export const listRuns = (): Promise<IRunList> => request<IRunList>('runs');

export const stopRun = (id: string): Promise<{ id: string; status: string }> =>
  request(`runs/${encodeURIComponent(id)}/stop`, { method: 'POST' });

export const quickstartTemplate = (): Promise<{ name: string; content: any }> =>
  request('template');
