// Files over HTTP with the device token: upload (POST /v1/files), and reading a file or its
// thumbnail into a blob: URL (an <img src> or <a href> can't carry the Authorization header).

import { savedToken } from "./api.js";

function auth() {
  return { Authorization: `Bearer ${savedToken()}` };
}

// Resolves to the file record ({id, name, size, type, ...}); rejects with the server's
// {code, message} (type_not_allowed, too_large, type_mismatch, ...) or {code: "network"}.
export async function upload(file) {
  let response;
  try {
    response = await fetch(`/v1/files?name=${encodeURIComponent(file.name)}`, {
      method: "POST",
      headers: { ...auth(), "Content-Type": file.type || "application/octet-stream" },
      body: file,
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw { code: "network" };
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw { code: `http_${response.status}` };
  }
  if (!response.ok) throw body.error || { code: `http_${response.status}` };
  return body;
}

// A blob: URL for the file (or its thumbnail); the caller revokes it when it is gone.
export async function blobUrl(fileId, thumbnail = false) {
  const path = `/v1/files/${encodeURIComponent(fileId)}${thumbnail ? "/thumbnail" : ""}`;
  let response;
  try {
    response = await fetch(path, { headers: auth(), credentials: "omit" });
  } catch {
    throw { code: "network" };
  }
  if (!response.ok) throw { code: `http_${response.status}` };
  return URL.createObjectURL(await response.blob());
}

// Saves the file under its own name, through a temporary link.
export async function download(file) {
  const url = await blobUrl(file.id);
  const a = document.createElement("a");
  a.href = url;
  a.download = file.name || "file";
  a.rel = "noopener";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export function sizeText(bytes, lang) {
  const units = lang === "ru" ? ["Б", "КБ", "МБ", "ГБ"] : ["B", "KB", "MB", "GB"];
  let n = bytes;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}
