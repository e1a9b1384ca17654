// The dashboard: every screen reads the reports' own JSON with the session cookie, and every
// table links to the same report as XLSX and CSV. All state is in the URL's hash
// (`#screen?from=…&org=…&lang=en`), so a view can be shared. Nothing is loaded from another
// host: charts are inline SVG drawn here.
"use strict";

const WORDS = {
  programme: ["同心服务 · 数据看板", "Tongxin · Dashboard"],
  from: ["起", "From"], to: ["止", "To"], unit: ["单位", "Unit"], region: ["区域", "Region"],
  clear: ["清除", "Clear"], forms: ["填报", "Forms"], notices: ["通知", "Notifications"],
  report: ["报告", "Report"],
  overview: ["总览", "Overview"], dist: ["分布", "Breakdown"], needs: ["需求", "Needs"],
  timeliness: ["及时率", "Timeliness"], coverage: ["覆盖", "Coverage"],
  assessment: ["考核", "Assessment"], pairing: ["结对", "Pairings"],
  all: ["全部", "All"], allTime: ["全部时间", "all time"], total: ["合计", "Total"],
  activities: ["活动次数", "Activities"], served: ["服务群众(人次)", "People served"],
  volunteers: ["志愿者参与(人次)", "Volunteer turn-outs"],
  unique_volunteers: ["志愿者(人)", "Distinct volunteers"],
  volunteer_hours: ["服务时长(小时)", "Volunteer hours"], trainees: ["培训(人)", "Trainees"],
  donation_value_cny: ["捐赠价值(元)", "Donations (CNY)"],
  trend: ["按月趋势（服务群众人次）", "Monthly trend (people served)"],
  byMonth: ["按月", "By month"], name: ["名称", "Name"], month: ["月份", "Month"],
  by_region: ["按区域", "By region"], by_organization: ["按单位", "By unit"],
  by_base: ["按服务基地", "By base"], by_theme: ["按主题", "By theme"],
  by_service_type: ["按服务类型", "By service type"],
  drillHint: ["点击行可下钻", "Click a row to drill down"],
  activityList: ["服务活动清单", "Activities"], date: ["日期", "Date"],
  title: ["活动", "Activity"], base: ["服务基地", "Base"],
  open: ["待认领", "Open"], claimed: ["已认领", "Claimed"], resolved: ["已解决", "Resolved"],
  closed: ["已办结", "Closed"], needsTotal: ["需求总数", "Needs"],
  byCategory: ["按类别", "By category"], oldest: ["等待最久的需求", "Oldest waiting needs"],
  need: ["需求", "Need"], category: ["类别", "Category"], urgency: ["紧急程度", "Urgency"],
  submitted: ["提交时间", "Submitted"], followupsOverdue: ["跟踪逾期", "Follow-ups overdue"],
  medianClaim: ["认领用时中位数(小时)", "Median hours to claim"],
  responseRate: ["按时响应率", "Response rate"], resolutionRate: ["实际解决率", "Resolution rate"],
  satisfactionRate: ["满意率", "Satisfaction rate"],
  possibleDuplicates: ["疑似重复", "Possible duplicates"],
  duplicateOf: ["疑似重复(原需求)", "Possible duplicate of"],
  linkDuplicate: ["去关联", "Link it"],
  ratesByMonth: ["按月三率（响应、解决、满意）", "The three rates by month (response, resolution, satisfaction)"],
  responseDue: ["应响应", "Response due"], respondedOnTime: ["按时响应", "Claimed on time"],
  neverClaimed: ["超时未响应", "Never claimed"], settled: ["已办理", "Settled"],
  solved: ["实际解决", "Solved"], answered: ["已评价", "Answered"],
  answeredSatisfied: ["满意", "Satisfied"], answeredPartly: ["部分满意", "Partly satisfied"],
  answeredUnsatisfied: ["不满意", "Not satisfied"],
  reopenedUnsatisfied: ["不满意后重办", "Reopened after not satisfied"],
  need_response_rate: ["需求按时响应率", "Need response rate"],
  need_resolution_rate: ["需求实际解决率", "Need resolution rate"],
  need_satisfaction_rate: ["需求满意率", "Need satisfaction rate"],
  onTimeRate: ["按时报送率", "On-time rate"], due: ["应报送", "Due"],
  on_time: ["按时报送", "On time"], late: ["逾期报送", "Late"],
  missing: ["逾期未报送", "Missing"], pending: ["待报送", "Pending"],
  scheduled: ["排班活动", "Scheduled"], missed: ["排班未开展", "Missed"],
  overdueUnits: ["逾期未报送单位", "Units with overdue reports"],
  missingList: ["逾期未报送名单", "Overdue reports"], daysOverdue: ["逾期天数", "Days overdue"],
  dueAt: ["报送截止时间", "Due at"], noneOverdue: ["无逾期单位", "No unit is overdue"],
  idleBases: ["长期未开展活动的服务基地", "Bases without activity"],
  idleDays: ["未开展活动天数 ≥", "Days idle ≥"], asAt: ["截至", "as at"],
  now: ["现在", "now"],
  overdueDef: ["（若选了截止日期且早于今天，则为该日结束时）。逾期天数 = 截至时刻 − 报送截止时间；与覆盖页的截至日相同。",
    " (or the end of the period's last day, when that is earlier). Days overdue = that moment − the report's deadline; the same day the coverage screen counts to."],
  lastActivity: ["最近活动日期", "Last activity"], daysIdle: ["未开展活动天数", "Days idle"],
  never: ["从未", "never"], campaign: ["入户走访行动", "Campaign"],
  households: ["户数", "Households"], visited: ["已走访户数", "Households visited"],
  coverageRate: ["覆盖率", "Coverage"], visits: ["走访次数", "Visits"],
  notVisited: ["尚未走访的基地", "Bases not yet visited"], bases: ["服务基地数", "Bases"],
  noCampaign: ["暂无入户走访行动", "No campaign in scope"],
  year: ["年度", "Year"], rank: ["名次", "Rank"], score: ["总分", "Score"],
  breakdown: ["得分构成", "Score breakdown"], units: ["先进集体（单位排名）", "Units ranked"],
  people: ["先进个人（按确认服务时长）", "Individuals (by confirmed hours)"],
  hoursConfirmed: ["确认服务时长(小时)", "Confirmed hours"], star: ["星级", "Stars"],
  person: ["姓名", "Name"], noYear: ["暂无活动年度", "No year with activities"],
  pairings: ["结对共建履约台账", "Pairings and their fulfilment"],
  pickPairing: ["选择结对", "Pick a pairing"], projects: ["项目数", "Projects"],
  unassigned: ["未归入项目", "Not under a project"],
  noActivityLogged: ["无活动记录", "no activity logged"],
  fulfilmentDef: ["履约率 = 已开展项目 ÷ 项目清单中的项目数；已开展项目指所选期间内至少记录了一次活动的清单项目（项目登记的状态，如“已完成”，不计）。没有归入项目的活动单列一行“未归入项目”，合计等于各行之和。",
    "Fulfilment = projects run ÷ projects listed; a listed project is run when at least one activity was logged under it in the period (the status a project was given, such as done, does not count). Activities under no project have a row of their own; every total is the sum of the rows shown."],
  idleDef: ["（今天；若选了截止日期且早于今天，则为该日）。未开展活动天数 = 截至日 − 最近服务日；记录了服务活动或入户走访的日子都算服务日，走访过的社区不算“从未”。",
    "(today, or the end of the period chosen if earlier). Days idle = that day − the last day served; a day with an activity logged or a campaign visit recorded is a day served, so a door-knocked community is not never served."],
  lastVisit: ["最近走访日期", "Last campaign visit"],
  ownLevel: ["本级", "its own bases"],
  ownBases: ["本级登记的服务基地", "Bases registered at the region itself"],
  countedOnce: ["多个单位（或多种服务类型）共同开展的一次活动，在每个参与单位（类型）的行里各计一次，在合计中只计一次，所以活动次数的合计可以小于各行之和；志愿者(人)同理按人去重。其余各列的合计等于各行之和。",
    "An activity several units (or service types) took part in counts once in each of their rows and once in the total, so the total of activities can be less than the sum of the rows; distinct volunteers are counted once each too. Every other column's total is the sum of its rows."],
  projectsRun: ["已开展项目", "Projects run"], fulfilment: ["履约率", "Fulfilment"],
  needsList: ["需求清单", "Needs list"], resources: ["资源清单", "Resources list"],
  projectList: ["项目清单", "Projects list"], project: ["项目", "Project"],
  status: ["状态", "Status"], empty: ["（无）", "(none)"], asOf: ["数据截至事件序号", "As of event"],
  loading: ["加载中…", "Loading…"], failed: ["加载失败", "Could not load"],
  liveOn: ["实时", "live"], pairingName: ["结对", "Pairing"],
  on_time_rate: ["按时报送率", "On-time rate"], needs_resolved: ["办结需求", "Needs resolved"],
  needs_claimed: ["认领需求", "Needs claimed"],
  attention: ["需要关注", "Needs attention"],
  overdueByUnit: ["逾期未报送的单位", "Overdue reports by unit"],
  reportsOverdue: ["份报告逾期未报送", "reports overdue"],
  unitsOverdue: ["个单位", "units"],
  waitingLongest: ["等待最久的需求", "Needs waiting longest"],
  needsOpen: ["项需求待认领", "needs waiting for a unit"],
  daysWaiting: ["已等待(天)", "Days waiting"],
  followupsDue: ["跟踪逾期的需求", "Follow-ups overdue"],
  followupsCount: ["项需求跟踪逾期", "follow-ups overdue"],
  followupDue: ["跟踪期限", "Follow-up due"], claimer: ["认领单位", "Claimed by"],
  idleShort: ["未开展活动的服务基地", "Idle bases"],
  idleCount: ["个基地90天以上未开展活动", "bases idle 90 days or more"],
  seeAll: ["查看全部", "See all"],
  periodCompare: ["本期与上期", "This period against the last"],
  thisPeriod: ["本期", "this period"], lastPeriod: ["上期", "last period"],
  noneBefore: ["上期为零", "none last period"],
  outputs: ["服务成效", "Outputs"], noOutputs: ["本范围内暂无成效数据", "No outputs in scope"],
  updated: ["数据更新于", "Figures as at"], filter: ["筛选…", "Filter…"],
  prevPage: ["上一页", "Previous"], nextPage: ["下一页", "Next"],
  volunteersTab: ["志愿者", "Volunteers"],
  volunteerLedger: ["志愿者服务时长", "Volunteers and their hours"],
  hoursUnconfirmed: ["待确认时长(小时)", "Unconfirmed hours"],
  activitiesAttended: ["参加活动(次)", "Activities"],
  // the volunteers screen (GET /v1/reports/volunteers): hours by how they were recorded
  bySignIn: ["签到签退(小时)", "Signed in and out (h)"],
  bySelf: ["本人申报(小时)", "Self-reported (h)"],
  byOrganiser: ["组织者录入(小时)", "Entered by organiser (h)"],
  byImport: ["导入(小时)", "Imported (h)"],
  openSignIns: ["未签退(次，不计时长)", "Not signed out (no hours)"],
  volunteersCount: ["志愿者(人)", "Volunteers"],
  // approving a period's figures (period.approved, sent to the events service)
  approve_month: ["审定本月数据", "Approve this month"],
  approve_quarter: ["审定本季度数据", "Approve this quarter"],
  approve_year: ["审定本年度数据", "Approve this year"],
  approveAgain: ["重新审定", "Approve again"],
  approving: ["正在审定…", "Approving…"],
  approveFailed: ["审定未成功", "Not approved"],
  causes: ["审定后的变更", "Changes since approved"],
  // the events that restate an approved period (its causes' `type`, `.` as `_`)
  cause_activity_logged: ["新登记活动", "Activity logged"],
  cause_activity_corrected: ["更正活动", "Activity corrected"],
  cause_activity_retracted: ["撤回活动", "Activity retracted"],
  cause_attendance_recorded: ["记录服务时长", "Hours recorded"],
  cause_attendance_confirmed: ["确认服务时长", "Hours confirmed"],
  cause_attendance_declined: ["不予确认服务时长", "Hours declined"],
};

// Codes the reports send as they are (a need's urgency, a project's status, a role): their
// words in both languages. The taxonomy's codes (themes, service types, indicators) come with
// /v1/dashboard/choices, from the one list the services share.
const CODES = {
  urgency: { low: ["不急", "Low"], normal: ["一般", "Normal"], high: ["较急", "High"],
    urgent: ["紧急", "Urgent"] },
  status: { planned: ["计划中", "Planned"], claimed: ["已认领", "Claimed"],
    in_progress: ["进行中", "In progress"], done: ["已完成", "Done"],
    cancelled: ["已取消", "Cancelled"], open: ["待认领", "Open"], resolved: ["已解决", "Resolved"],
    closed: ["已办结", "Closed"], active: ["进行中", "Active"], suspended: ["已暂停", "Suspended"],
    ended: ["已结束", "Ended"] },
  role: { admin: ["管理员", "Administrator"], organiser: ["组织者", "Organiser"],
    unit: ["单位", "Unit"], reader: ["只读", "Reader"], publisher: ["外部系统", "Publisher"] },
};

const $ = (sel) => document.querySelector(sel);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

let choices = null;          // /v1/dashboard/choices: who, units, regions, campaigns, …
let rendering = 0;           // a newer render makes an older one's answer stale
const seenNotices = new Set();

// -- the URL: screen and parameters ------------------------------------------------------

function state() {
  const [screen, query] = location.hash.replace(/^#/, "").split("?");
  return { screen: WORDS[screen] ? screen : "overview", p: new URLSearchParams(query || "") };
}

function go(changes, screen) {
  const s = state();
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "") s.p.delete(k); else s.p.set(k, v);
  }
  const q = s.p.toString();
  location.hash = `${screen || s.screen}${q ? "?" + q : ""}`;
}

const en = () => state().p.get("lang") === "en";
const t = (key) => (WORDS[key] || [key, key])[en() ? 1 : 0];
/** A code's word (CODES) in the page's language; an unknown code as it is. */
const word = (kind, code) => (code === null || code === undefined || code === "" ? null
  : (CODES[kind][code] || [code, code])[en() ? 1 : 0]);
/** A taxonomy code's label in the page's language, else the report's own label. */
const codeLabel = (kind, code, fallback) => {
  const found = ((choices && choices.taxonomy) || {})[kind];
  return found && found[code] ? found[code][en() ? 1 : 0] : (fallback ?? code);
};
/** Report rows grouped by a taxonomy code, labelled in the page's language. */
const KIND_OF_GROUP = { theme: "theme", service_type: "service_type", category: "service_type" };
const relabel = (rows, groupBy) => (KIND_OF_GROUP[groupBy] ? rows.map((r) => (
  { ...r, label: r.key ? codeLabel(KIND_OF_GROUP[groupBy], r.key, r.label) : r.label })) : rows);
const figureLabel = (figure) => (figure.startsWith("outputs.")
  ? codeLabel("indicator", figure.slice(8), figure) : t(figure));
const num = (v) => (v === null || v === undefined ? "—"
  : Number(v).toLocaleString(en() ? "en-US" : "zh-CN", { maximumFractionDigits: 2 }));
const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);

/** The period and scope every report takes, from the URL. */
function scope() {
  const p = state().p;
  const out = {};
  for (const [k, name] of [["from", "from"], ["to", "to"], ["org", "organization_id"],
    ["region", "region"]]) {
    if (p.get(k)) out[name] = p.get(k);
  }
  return out;
}

function url(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// The seq of this page's own last write (an approval): every report is read at least as of it,
// so a screen drawn after the write shows it applied, whichever instance answers.
let readAfter = 0;

async function api(path, params) {
  const after = readAfter && path.startsWith("/v1/reports/") ? { min_seq: readAfter } : {};
  const r = await fetch(url(path, { ...params, ...after }), { credentials: "same-origin",
    headers: { Accept: "application/json", "Accept-Language": en() ? "en" : "zh-CN" } });
  if (!r.ok) throw new Error(await refusal(r));
  return r.json();
}

/** The one error shape, its messages in the page's language: say those, not the JSON. */
async function refusal(r) {
  const text = await r.text();
  let said = text.slice(0, 300);
  try { said = JSON.parse(text).errors.map((e) => e.message).join("; ") || said; } catch { /* as is */ }
  return `${r.status} · ${said}`;
}

// -- building blocks ---------------------------------------------------------------------

function exportsOf(path, params) {
  const headers = en() ? { headers: "en" } : {};
  return `<span class="exports">` +
    `<a class="xlsx" href="${esc(url(path, { ...params, format: "xlsx", ...headers }))}">XLSX</a>` +
    `<a class="csv" href="${esc(url(path, { ...params, format: "csv", ...headers }))}">CSV</a></span>`;
}

/** A table: columns are [key, label word, kind] with kind "text", "pct", or a number;
 *  a column's key may be a function of the row. Rows with `drill` get a click target. */
function table(columns, rows, totals, drill) {
  const cell = (c, row) => {
    const v = typeof c[0] === "function" ? c[0](row) : row[c[0]];
    if (c[2] === "html") return `<td class="text">${v ?? ""}</td>`;
    if (c[2] === "text") return `<td class="text">${esc(v ?? "—")}</td>`;
    return `<td>${c[2] === "pct" ? pct(v) : num(v)}</td>`;
  };
  const head = columns.map((c) => `<th class="${c[2] === "text" || c[2] === "html" ? "text" : ""}">`
    + `${esc(String(c[1]).startsWith("outputs.") ? outputLabel(c[1].slice(8)) : t(c[1]))}</th>`).join("");
  const body = rows.map((row) => `<tr${drill && drill(row) ? ` class="drill" data-drill="${
    esc(JSON.stringify(drill(row)))}"` : ""}>${columns.map((c) => cell(c, row)).join("")}</tr>`)
    .join("") || `<tr><td colspan="${columns.length}">${t("empty")}</td></tr>`;
  const foot = totals ? `<tfoot><tr>${columns.map((c, i) => (i === 0
    ? `<td class="text">${t("total")}</td>` : typeof c[0] === "function" || c[2] === "text"
      || c[2] === "html" ? "<td></td>" : cell(c, totals))).join("")}</tr></tfoot>` : "";
  return `<div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody>`
    + `${foot}</table></div>`;
}

/** A possible duplicate's original, and for those who may link needs (the units, and the
 *  organisers and administrators above them) the forms' link form, the need chosen: the forms
 *  send need.linked as they send every event (kept on the device when offline). */
function duplicateCell(row) {
  if (!row.possible_duplicate_of) return "—";
  const may = ["admin", "organiser", "unit"].includes(choices.who.role) && choices.forms_url;
  const href = `${choices.forms_url}?link=${encodeURIComponent(row.need_id)}#need`;
  return esc(row.possible_duplicate_of)
    + (may ? ` <a class="link-duplicate" href="${esc(href)}">${esc(t("linkDuplicate"))}</a>` : "");
}

function section(title, inner, exportPath, exportParams, id) {
  return `<section${id ? ` id="${id}"` : ""}>`
    + `${exportPath ? exportsOf(exportPath, exportParams) : ""}<h2>${esc(title)}</h2>${inner}</section>`;
}

function cards(items) {
  return `<div class="cards">${items.map(([key, value, fmt, warn]) =>
    `<div class="card${warn ? " warn" : ""}" data-figure="${key}"><div class="v">${
      fmt === "pct" ? pct(value) : num(value)}</div><div class="k">${esc(t(key))}</div></div>`)
    .join("")}</div>`;
}

// -- dates, times and names as people write them ------------------------------------------

const MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August",
  "September", "October", "November", "December"];

/** A day (`2026-12-07`, or a timestamp's date) as people write it: 2026年12月7日, 7 Dec 2026. */
function dayText(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(iso ?? ""));
  if (!m) return iso ? String(iso) : "—";
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return en() ? `${d} ${MONTHS_EN[mo - 1].slice(0, 3)} ${y}` : `${y}年${mo}月${d}日`;
}

/** A moment (an ISO timestamp with its offset) as people write it, in the programme's time
 *  zone: 2026年12月7日 18:30, 7 Dec 2026 18:30. */
function momentText(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return String(iso);
  const parts = {};
  new Intl.DateTimeFormat("en-GB", { timeZone: (choices && choices.timezone) || undefined,
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    hourCycle: "h23" }).formatToParts(at).forEach((x) => { parts[x.type] = x.value; });
  return `${dayText(`${parts.year}-${parts.month}-${parts.day}`)} ${parts.hour}:${parts.minute}`;
}

/** A month (`2013-04`) as people write it: 2013年4月, Apr 2013. */
function monthText(ym) {
  const m = /^(\d{4})-(\d{2})$/.exec(String(ym ?? ""));
  if (!m) return ym ?? "—";
  return en() ? `${MONTHS_EN[Number(m[2]) - 1].slice(0, 3)} ${m[1]}` : `${m[1]}年${Number(m[2])}月`;
}

/** Whole days from one day to another (ISO days or timestamps' dates). */
function daysBetween(a, b) {
  const d = (x) => Date.UTC(...String(x).slice(0, 10).split("-").map((v, i) => Number(v) - (i === 1 ? 1 : 0)));
  return Math.round((d(b) - d(a)) / 86400000);
}

/** A region's name, from its code (the registry's id), else the code. */
function regionName(code) {
  const r = code ? choices.regions.find((x) => x.id === code) : null;
  return r ? r.name : code;
}

// -- long lists: sorted, paged and filtered in the page ------------------------------------

const LISTS = {};   // each long list's filter, sort and page, by its id: kept across redraws
const PAGE_ROWS = 25;

/** A long table: table()'s columns (a column may add a 4th element, the row's key it sorts
 *  by), every row of the report; a filter box (any part of any text cell), headers that sort,
 *  pages of PAGE_ROWS. `first` = [column index, 1 | -1]: the order before any click. The
 *  totals row shows while nothing is filtered out (a filter shows how many rows it kept). */
function listing(id, columns, rows, totals, first) {
  const st = LISTS[id] || (LISTS[id] = { q: "", col: first ? first[0] : null,
    dir: first ? first[1] : 1, page: 0 });
  Object.assign(st, { columns, rows, totals });
  return `<div class="listing" data-list="${esc(id)}"><input type="search" class="find" `
    + `value="${esc(st.q)}" placeholder="${esc(t("filter"))}" aria-label="${esc(t("filter"))}">`
    + `<div class="listed">${listed(id)}</div></div>`;
}

function cellValue(c, row) {
  if (c[3]) return row[c[3]];
  return typeof c[0] === "function" ? c[0](row) : row[c[0]];
}

function listed(id) {
  const st = LISTS[id];
  const words = st.q.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const texts = st.columns.filter((c) => c[2] === "text");
  let rows = words.length ? st.rows.filter((row) => {
    const hay = texts.map((c) => String((typeof c[0] === "function" ? c[0](row) : row[c[0]]) ?? ""))
      .join(" ").toLowerCase();
    return words.every((w) => hay.includes(w));
  }) : [...st.rows];
  if (st.col !== null && st.columns[st.col]) {
    const c = st.columns[st.col];
    const collator = new Intl.Collator(en() ? "en" : "zh-CN", { numeric: true });
    rows.sort((a, b) => {
      const x = cellValue(c, a), y = cellValue(c, b);
      if (x === null || x === undefined || x === "") return (y === null || y === undefined || y === "") ? 0 : 1;
      if (y === null || y === undefined || y === "") return -1;
      return st.dir * (typeof x === "number" && typeof y === "number" ? x - y
        : collator.compare(String(x), String(y)));
    });
  }
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_ROWS));
  st.page = Math.min(Math.max(0, st.page), pages - 1);
  const shown = rows.slice(st.page * PAGE_ROWS, (st.page + 1) * PAGE_ROWS);
  let i = 0;
  const html = table(st.columns, shown, words.length ? null : st.totals).replace(
    /<th class="([^"]*)">/g, (_, cls) => {
      const n = i++;
      const on = n === st.col ? (st.dir > 0 ? " up" : " down") : "";
      return `<th class="${cls} sorts${on}" data-col="${n}" aria-sort="${
        on ? (st.dir > 0 ? "ascending" : "descending") : "none"}">`;
    });
  const count = en() ? `Page ${st.page + 1} of ${pages} · ${num(rows.length)} of ${num(st.rows.length)} rows`
    : `第 ${st.page + 1}/${pages} 页 · ${num(rows.length)}/${num(st.rows.length)} 条`;
  return html + `<div class="pager" data-rows="${rows.length}" data-page="${st.page + 1}" data-pages="${pages}">`
    + `<button type="button" data-step="-1"${st.page ? "" : " disabled"}>‹ ${esc(t("prevPage"))}</button>`
    + `<span>${count}</span>`
    + `<button type="button" data-step="1"${st.page < pages - 1 ? "" : " disabled"}>${esc(t("nextPage"))} ›</button></div>`;
}

function redrawListing(box) {
  box.querySelector(".listed").innerHTML = listed(box.dataset.list);
}

/** The list controls: typing filters, a header sorts (again: the other way), ‹ › page. */
function wireListings(screen) {
  screen.addEventListener("input", (e) => {
    const box = e.target.closest(".listing");
    if (!box || !e.target.matches("input.find")) return;
    Object.assign(LISTS[box.dataset.list], { q: e.target.value, page: 0 });
    redrawListing(box);
  });
  screen.addEventListener("click", (e) => {
    const box = e.target.closest(".listing");
    if (!box) return;
    const st = LISTS[box.dataset.list];
    const th = e.target.closest("th[data-col]");
    const step = e.target.closest("button[data-step]");
    if (th) {
      const col = Number(th.dataset.col);
      st.dir = st.col === col ? -st.dir : (st.columns[col][2] === "text" ? 1 : -1);
      st.col = col;
      st.page = 0;
    } else if (step) {
      st.page += Number(step.dataset.step);
    } else return;
    redrawListing(box);
  });
}

/** The width a chart has to draw in: the screen's, less a section's padding. */
function chartWidth() {
  const main = $("#screen");
  return Math.max(300, Math.min(1200, (main ? main.clientWidth : 760) - 34));
}

const monthIndex = (ym) => { const [y, m] = ym.split("-").map(Number); return y * 12 + m - 1; };
const monthOf = (i) => `${Math.floor(i / 12)}-${String((i % 12) + 1).padStart(2, "0")}`;

/** A monthly trend on a real time axis: one slot per calendar month from the first to the
 *  last (the period's ends, if it has them), so a month without activities is a gap, not a
 *  neighbour. Ticks as far apart as their labels need; none cut off at the ends. */
function trend(rows, key, period) {
  const months = rows.filter((r) => /^\d{4}-\d{2}$/.test(String(r.key)));
  if (!months.length) return "";
  const ends = months.map((r) => monthIndex(r.key));
  if (period.from) ends.push(monthIndex(period.from.slice(0, 7)));
  if (period.to) ends.push(monthIndex(period.to.slice(0, 7)));
  let first = Math.min(...ends);
  const last = Math.max(...ends);
  first = Math.max(first, last - 599);  // fifty years at most
  const n = last - first + 1;
  const w = chartWidth(), h = w < 500 ? 170 : 210;
  const left = 8, right = 8, top = 18, bottom = 24;
  const slot = (w - left - right) / n;
  const max = Math.max(...months.map((r) => r[key]), 1);
  const y = (v) => top + (h - top - bottom) * (1 - v / max);
  const bars = months.filter((r) => monthIndex(r.key) >= first).map((r) => {
    const i = monthIndex(r.key) - first;
    const bw = Math.max(1, Math.min(56, slot * 0.75));
    return `<rect class="bar" data-month="${esc(r.key)}" data-slot="${i}" x="${
      (left + i * slot + (slot - bw) / 2).toFixed(1)}" y="${y(r[key]).toFixed(1)}" width="${
      bw.toFixed(1)}" height="${(h - bottom - y(r[key])).toFixed(1)}"><title>${esc(r.key)}: ${
      num(r[key])}</title></rect>`;
  }).join("");
  // Ticks: every 1, 2, 3 or 6 months (labelled 2013年4月 / Apr 2013), or every 1, 2, 5 or 10
  // years (labelled 2013), whichever first leaves room between labels.
  const steps = [[1, 76], [2, 76], [3, 76], [6, 76], [12, 36], [24, 36], [60, 36], [120, 36]];
  const [step, room] = steps.find(([m, px]) => m * slot >= px) || steps[steps.length - 1];
  const yearly = step >= 12;
  const marks = [];  // {cx: the tick, x: its label (moved inside the chart at the ends)}
  for (let i = first; i <= last; i += 1) {
    if (yearly ? i % 12 === 0 && (Math.floor(i / 12) % (step / 12)) === 0 : i % step === 0) {
      const cx = left + (i - first + (yearly ? 0 : 0.5)) * slot;
      const x = Math.min(Math.max(cx, left + room / 2), w - right - room / 2);
      const mark = { cx, x, label: yearly ? String(Math.floor(i / 12)) : monthText(monthOf(i)) };
      const prev = marks[marks.length - 1];
      if (prev && prev.label && mark.x - prev.x < room) {
        // Two labels too close (one moved in from an end): the moved one goes unlabelled.
        if (prev.x !== prev.cx) prev.label = ""; else mark.label = "";
      }
      marks.push(mark);
    }
  }
  const ticks = marks.map((m) => `<line class="tick" x1="${m.cx.toFixed(1)}" x2="${
    m.cx.toFixed(1)}" y1="${h - bottom}" y2="${h - bottom + 4}"></line>` + (m.label
    ? `<text class="tick" x="${m.x.toFixed(1)}" y="${h - 6}" text-anchor="middle">${m.label}</text>`
    : ""));
  return `<div class="chart trend"><svg viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" `
    + `role="img" data-first="${monthOf(first)}" data-last="${monthOf(last)}" data-months="${n}">`
    + `<line class="grid" x1="${left}" x2="${w - right}" y1="${top}" y2="${top}"></line>`
    + `<text x="${left}" y="${top - 5}">${num(max)}</text>`
    + `<line class="axis" x1="${left}" x2="${w - right}" y1="${h - bottom}" y2="${h - bottom}"></line>`
    + `${bars}${ticks.join("")}</svg></div>`;
}

/** Horizontal bars of the largest rows (a breakdown). */
function bars(rows, key) {
  const top = [...rows].sort((a, b) => b[key] - a[key]).slice(0, 12).filter((r) => r[key] > 0);
  if (!top.length) return "";
  const w = chartWidth(), rowH = 22, labelW = Math.min(230, Math.round(w * 0.36));
  const max = Math.max(...top.map((r) => r[key]));
  const chars = Math.max(6, Math.floor(labelW / 12.5));
  const h = top.length * rowH + 4;
  const out = top.map((r, i) => {
    const bw = ((w - labelW - 80) * r[key]) / max;
    const y = i * rowH + 2;
    const label = String(r.label ?? "—");
    return `<text x="0" y="${y + 15}">${esc(label.length > chars ? label.slice(0, chars - 1) + "…" : label)}</text>`
      + `<rect class="bar" x="${labelW}" y="${y + 3}" width="${bw}" height="${rowH - 7}"></rect>`
      + `<text x="${labelW + bw + 6}" y="${y + 15}">${num(r[key])}</text>`;
  }).join("");
  return `<div class="chart"><svg viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img">${
    out}</svg></div>`;
}

const FIGURE_COLUMNS = [["activities", "activities"], ["served", "served"],
  ["volunteers", "volunteers"], ["unique_volunteers", "unique_volunteers"],
  ["volunteer_hours", "volunteer_hours"], ["trainees", "trainees"],
  ["donation_value_cny", "donation_value_cny"]];

/** Output indicators (libraries built, students funded, …) as columns: one per indicator any
 *  row or the totals has, labelled by the taxonomy in the page's language. The rows and totals
 *  are given a flat `outputs.<code>` figure each (0 where a row has none). */
function withOutputs(rows, totals) {
  const codes = [...new Set([...rows, totals || {}].flatMap((r) => Object.keys(r.outputs || {})))]
    .sort();
  const flat = (r) => (r ? { ...r, ...Object.fromEntries(codes.map((c) =>
    [`outputs.${c}`, (r.outputs || {})[c] ?? 0])) } : r);
  return { rows: rows.map(flat), totals: flat(totals),
    columns: codes.map((c) => [`outputs.${c}`, `outputs.${c}`]) };
}

/** The day idle days are counted to: today by the clock, or the period's end if earlier. */
/** The day after an ISO day (`2010-03-31` → `2010-04-01`). */
function nextDay(iso) {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

function asAtDay() {
  const to = state().p.get("to");
  const today = choices.today;
  return to && (!today || to < today) ? to : today;
}

// -- screens -----------------------------------------------------------------------------

const SCREENS = {};

// -- the overview: what needs attention first, then this period against the last ---------

const IDLE_DAYS = 90;   // the overview's idle bases: none in this many days

/** A month, quarter or year: its days and its name (as the report document names it). */
function periodOf(kind, y, n) {
  const m0 = kind === "month" ? n : kind === "quarter" ? 3 * n - 2 : 1;
  const months = { month: 1, quarter: 3, year: 12 }[kind];
  const last = new Date(Date.UTC(y, m0 - 1 + months, 0)).toISOString().slice(0, 10);
  const name = en()
    ? { month: `${MONTHS_EN[n - 1]} ${y}`, quarter: `Q${n} ${y}`, year: `${y}` }[kind]
    : { month: `${y}年${n}月`, quarter: `${y}年第${"一二三四"[n - 1]}季度`, year: `${y}年` }[kind];
  return { kind, y, n, from: `${y}-${String(m0).padStart(2, "0")}-01`, to: last, name };
}

function periodBefore(p) {
  const count = { month: 12, quarter: 4, year: 1 }[p.kind];
  return p.n > 1 ? periodOf(p.kind, p.y, p.n - 1) : periodOf(p.kind, p.y - 1, count);
}

function addDays(day, n) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

/** The period the filters show and the one before it: a whole month, quarter or year as
 *  such; another from–to range against as many days before it; no range: the last month
 *  with activities in scope up to today (`lastMonth`), against the month before. */
function comparedPeriods(lastMonth) {
  const p = state().p;
  const from = p.get("from") || "", to = p.get("to") || "";
  if (from && to) {
    const [y, m] = from.split("-").map(Number);
    for (const [kind, n] of [["month", m], ["quarter", Math.floor((m - 1) / 3) + 1], ["year", 1]]) {
      const exact = periodOf(kind, y, n);
      if (exact.from === from && exact.to === to) return [exact, periodBefore(exact)];
    }
    const days = daysBetween(from, to) + 1;
    const range = (a, b) => ({ from: a, to: b, name: `${dayText(a)} – ${dayText(b)}` });
    return [range(from, to), range(addDays(from, -days), addDays(from, -1))];
  }
  const day = from || to || (lastMonth ? `${lastMonth}-01` : choices.today);
  const month = periodOf("month", Number(day.slice(0, 4)), Number(day.slice(5, 7)));
  return [month, periodBefore(month)];
}

/** One attention block: the figure that says how much, a few rows that say where, a link to
 *  the screen with all of them. */
function attention(id, title, figure, value, note, items, screen) {
  const list = items.length ? `<ol class="rows">${items.map(([label, what]) =>
    `<li><span class="what" title="${esc(label)}">${esc(label)}</span><span class="how">${
      esc(what)}</span></li>`).join("")}</ol>` : "";
  return `<section class="attn${value > 0 ? "" : " calm"}" id="${id}"><h2>${esc(title)}<a class="more" data-screen-go="${
    screen}">${esc(t("seeAll"))} ›</a></h2><div class="headline${value > 0 ? " warn" : ""}" `
    + `data-figure="${figure}"><span class="v">${num(value)}</span> <span class="k">${
      esc(note)}</span></div>${list}</section>`;
}

/** The change from the period before, as people read it: ▲ 12.5%, ▼ 3.0%, or none before. */
function change(now, before) {
  if (!before) return now ? `<span class="d">${esc(t("noneBefore"))}</span>` : `<span class="d">—</span>`;
  const f = (now - before) / before;
  const cls = f > 0 ? "up" : f < 0 ? "down" : "";
  return `<span class="d ${cls}" data-change="${f}">${f > 0 ? "▲" : f < 0 ? "▼" : "="} ${
    (Math.abs(f) * 100).toFixed(1)}%</span>`;
}

/** An output indicator's name with its unit (投入资金(万元)), else the taxonomy's label. */
const outputLabel = (code) => {
  const header = (choices.indicator_headers || {})[code];
  return header ? header[en() ? 1 : 0] : codeLabel("indicator", code);
};

const COMPARED = ["activities", "served", "volunteers", "volunteer_hours", "trainees",
  "donation_value_cny"];

SCREENS.overview = async () => {
  const params = { ...scope(), group_by: "month" };
  const { from, to, ...where } = scope();
  const at = asAtDay();  // the day the coverage screen counts to: one definition
  const r = await api("/v1/reports/summary", params);
  const months = r.rows.map((row) => row.key).filter((k) => /^\d{4}-\d{2}$/.test(String(k))
    && k <= choices.today.slice(0, 7));
  const [now, before] = comparedPeriods(months[months.length - 1]);
  const [late, needs, waiting, followups, idle, cur, prev] = await Promise.all([
    api("/v1/reports/timeliness", scope()),
    api("/v1/reports/needs", { ...scope(), group_by: "category" }),
    api("/v1/reports/needs/items", { ...scope(), state: "open", limit: 5 }),
    api("/v1/reports/needs/items", { ...scope(), followup: "overdue", limit: 5 }),
    api("/v1/reports/coverage", { ...scope(), idle_days: IDLE_DAYS, at }),
    api("/v1/reports/summary", { ...where, from: now.from, to: now.to, group_by: "year" }),
    api("/v1/reports/summary", { ...where, from: before.from, to: before.to, group_by: "year" }),
  ]);
  const owing = late.rows.filter((row) => row.missing > 0)
    .sort((a, b) => b.missing - a.missing || String(a.label).localeCompare(String(b.label), "zh-CN"));
  const blocks = [
    attention("attn-overdue", t("overdueByUnit"), "missing", late.totals.missing,
      `${t("reportsOverdue")} · ${num(owing.length)} ${t("unitsOverdue")}`,
      owing.slice(0, 5).map((row) => [row.label, num(row.missing)]), "timeliness"),
    attention("attn-waiting", t("waitingLongest"), "open", needs.totals.open, t("needsOpen"),
      waiting.rows.map((n) => [`${n.title} · ${n.base_label}`,
        `${num(daysBetween(n.submitted_at, choices.today))} ${en() ? "days" : "天"}`]), "needs"),
    attention("attn-followups", t("followupsDue"), "followups_overdue",
      needs.totals.followups_overdue, t("followupsCount"),
      followups.rows.map((n) => [`${n.title} · ${n.organization_label || n.base_label}`,
        dayText(n.followup && n.followup.due_on)]), "needs"),
    attention("attn-idle", t("idleShort"), "idle_bases", idle.totals.idle_bases, t("idleCount"),
      idle.rows.slice(0, 5).map((b) => [b.label, b.last_activity
        ? `${num(b.days_idle)} ${en() ? "days" : "天"}` : t("never")]), "coverage"),
  ];
  const compared = `<div class="cards">${COMPARED.map((k) => `<div class="card" data-figure="${k}">`
    + `<div class="v">${num(cur.totals[k])}</div><div class="k">${esc(t(k))}</div>`
    + `${change(cur.totals[k], prev.totals[k])}<div class="was">${esc(t("lastPeriod"))} ${
      num(prev.totals[k])}</div></div>`).join("")}</div>`;
  const outputs = Object.entries(r.totals.outputs || {}).sort(([a], [b]) =>
    outputLabel(a).localeCompare(outputLabel(b), en() ? "en" : "zh-CN"));
  const outputCards = outputs.length ? `<div class="cards">${outputs.map(([code, v]) =>
    `<div class="card" data-figure="outputs.${esc(code)}"><div class="v">${num(v)}</div>`
    + `<div class="k">${esc(outputLabel(code))}</div></div>`).join("")}</div>`
    : `<p>${esc(t("noOutputs"))}</p>`;
  r.rows = r.rows.map((row) => ({ ...row, label: monthText(row.key) }));
  return [r.as_of, `<h2 class="lead">${esc(t("attention"))}</h2>`
    + `<div class="attention">${blocks.join("")}</div>`
    + section(`${t("periodCompare")} · ${now.name} / ${before.name}`, compared, null, null,
      "compare")
    + section(t("outputs"), outputCards, null, null, "outputs")
    + `<section id="totals">${cards(FIGURE_COLUMNS.map(([k]) => [k, r.totals[k]]))}</section>`
    + section(t("trend"), trend(r.rows, "served", scope()))
    + section(t("byMonth"), table([["label", "month", "text"], ...FIGURE_COLUMNS], r.rows, r.totals),
      "/v1/reports/summary", params)];
};

function regionOf(id) { return choices.regions.find((r) => r.id === id); }

function regionChain(id) {
  const out = [];
  for (let r = regionOf(id); r && out.length < 8; r = regionOf(r.parent_id)) out.unshift(r);
  return out;
}

/** The drill path of the breakdown: what the rows are, given the region or unit chosen. */
function breakdownQuery(by, p) {
  if (by === "region") {
    const level = (regionOf(p.get("region")) || {}).level;
    if (level === "district" || level === "town" || level === "community") return ["base"];
    return ["region", level === "city" ? "district" : "city"];
  }
  if (by === "organization" && p.get("org")) return ["base"];
  return [by];
}

SCREENS.dist = async () => {
  const p = state().p;
  const by = p.get("by") || "region";
  const tabs = ["region", "organization", "base", "theme", "service_type"].map((b) =>
    `<a data-go='${JSON.stringify({ by: b, base: null, own: null })}' class="${b === by ? "on" : ""}">${
      esc(t("by_" + b))}</a>`).join(" · ");
  const crumbs = [`<a data-go='${JSON.stringify({ region: null, org: null, base: null, own: null })}'>${
    esc(t("all"))}</a>`];
  if (by === "region") {
    for (const r of regionChain(p.get("region"))) {
      crumbs.push(`<a data-go='${JSON.stringify({ region: r.id, base: null, own: null })}'>${
        esc(r.name)}</a>`);
    }
    if (p.get("own") && p.get("region")) {
      crumbs.push(`<a data-go='${JSON.stringify({ base: null })}'>${esc(t("ownBases"))}</a>`);
    }
  } else if (p.get("org")) {
    const u = choices.units.find((x) => x.id === p.get("org"));
    crumbs.push(`<a data-go='${JSON.stringify({ base: null })}'>${esc(u ? u.name : p.get("org"))}</a>`);
  }
  const head = `<div class="pick">${tabs}</div>`;
  if (p.get("base")) {
    const params = { ...scope(), base_id: p.get("base"), limit: 500 };
    const r = await api("/v1/reports/activities", params);
    const base = r.rows.length ? r.rows[0].base_label : p.get("base");
    crumbs.push(`<span>${esc(base)}</span>`);
    return [r.as_of, `<section>${head}<div class="crumbs">${crumbs.join(" › ")}</div>`
      + cards([["activities", r.totals.activities], ["served", r.totals.served],
        ["volunteer_hours", r.totals.volunteer_hours]]) + "</section>"
      + section(`${t("activityList")} · ${base}`, table([[(row) => dayText(row.day), "date", "text"],
        ["title", "title", "text"], ["organization_label", "unit", "text"], ["served", "served"],
        ["volunteers", "volunteers"], ["volunteer_hours", "volunteer_hours"]], r.rows, r.totals),
      "/v1/reports/activities", { ...scope(), base_id: p.get("base") }, "activity-list")];
  }
  // A region's own bases (registered at the region itself, above the level of its rows).
  const own = by === "region" && p.get("own") && p.get("region");
  const [groupBy, level] = own ? ["base"] : breakdownQuery(by, p);
  const params = { ...scope(), group_by: groupBy, ...(level ? { region_level: level } : {}),
    ...(own ? { region_exact: "true" } : {}) };
  const r = await api("/v1/reports/summary", params);
  r.rows = relabel(r.rows, groupBy);
  const ownLevel = (row) => groupBy === "region" && level && row.key
    && (regionOf(row.key) || {}).level !== level;
  if (groupBy === "region") {
    r.rows = r.rows.map((row) => (ownLevel(row) && regionOf(row.key) ? { ...row, label: en()
      ? `${regionOf(row.key).name} (${t("ownLevel")})` : `${regionOf(row.key).name}（${t("ownLevel")}）` }
      : row));
  }
  const out = withOutputs(r.rows, r.totals);
  const drill = (row) => {
    if (!row.key) return null;
    if (ownLevel(row) && row.key === p.get("region")) return { region: row.key, own: "1" };
    if (groupBy === "region") return { region: row.key };
    if (groupBy === "base") return { base: row.key };
    if (groupBy === "organization") return { org: row.key };
    return null;
  };
  const drillable = ["region", "base", "organization"].includes(groupBy);
  // An approved month, quarter or year says so (approved, or restated since: the server's words),
  // with the changes since; one who may approve it is offered to, or to approve it again.
  const approval = (r.approval && r.approval.state !== "not_approved"
    ? `<p class="note" id="approval">${esc(r.approval[en() ? "en" : "zh"])}</p>` : "")
    + (r.approval && r.approval.state === "restated" ? await causesOf(approvalScope(p, true)) : "")
    + approveButton(approvalScope(p), r.approval, r.as_of);
  return [r.as_of, `<section>${head}<div class="crumbs">${crumbs.join(" › ")}</div>${approval}`
    + `${bars(r.rows, "served")}</section>`
    + section(`${t("by_" + groupBy)}${drillable ? " · " + t("drillHint") : ""}`,
      table([["label", "name", "text"], ...FIGURE_COLUMNS, ...out.columns], out.rows, out.totals,
        drill) + (["organization", "service_type"].includes(groupBy)
        ? `<p class="note" id="counted-once">${esc(t("countedOnce"))}</p>` : ""),
      "/v1/reports/summary", params, "breakdown")];
};

// -- approving a period (数据审定) ---------------------------------------------------------

/** `2013-10`, `2013-Q4` or `2013` when from..to is exactly that month, quarter or year. */
function exactPeriod(from, to) {
  const m = /^(\d{4})-(\d{2})-01$/.exec(from || "");
  if (!m || !to) return null;
  const [y, first] = [Number(m[1]), Number(m[2])];
  const last = (months) => {
    const end = new Date(Date.UTC(y, first - 1 + months, 0));
    return end.toISOString().slice(0, 10);
  };
  if (to === last(1)) return `${m[1]}-${m[2]}`;
  if (first % 3 === 1 && to === last(3)) return `${m[1]}-Q${(first + 2) / 3}`;
  if (first === 1 && to === last(12)) return m[1];
  return null;
}

/** The scope and period the screen shows, as a `period.approved` names it: when it is exactly
 *  a month, quarter or year of a unit (or, for a login bound to none, of a region or the whole
 *  programme) and the login may approve it (an organiser or admin; `any`: whoever looks). */
function approvalScope(p, any) {
  const period = exactPeriod(p.get("from"), p.get("to"));
  const [org, region] = [p.get("org"), p.get("region")];
  if (!period || p.get("base") || p.get("own") || (org && region)) return null;
  if (!any && !["admin", "organiser"].includes(choices.who.role)) return null;
  if (!any && !org && choices.who.organization_id) return null;  // bound: names a unit
  return { period, ...(org ? { organization_id: org } : {}), ...(region ? { region } : {}) };
}

function approveButton(scope_, approval, asOf) {
  if (!scope_ || !approval || approval.state === "approved") return "";
  const label = approval.state === "restated" ? t("approveAgain")
    : t(`approve_${{ 4: "year", 7: "month" }[scope_.period.length] || "quarter"}`);
  return `<p class="approve"><button type="button" id="approve" data-approve='${
    esc(JSON.stringify({ ...scope_, as_of: asOf }))}'>${esc(label)}</button> `
    + `<span id="approve-error" class="error"></span></p>`;
}

/** The events that changed the approved figures since (which, from which unit, when). */
async function causesOf(scope_) {
  if (!scope_) return "";
  const found = (await api("/v1/reports/approvals", scope_)).rows.find((a) => a.period
    === scope_.period && (a.organization_id || null) === (scope_.organization_id || null)
    && (a.region || null) === (scope_.region || null));
  if (!found || !found.causes.length) return "";
  return `<div class="note" id="approval-causes">${esc(t("causes"))}<ol>${found.causes.map((c) =>
    `<li><time>${esc(momentText(c.occurred_at))}</time> · ${esc(c.organization_label || "—")} · ${
      esc(causeWord(c.type))}</li>`).join("")}</ol></div>`;
}

const causeWord = (type) => {
  const key = `cause_${String(type).replace(".", "_")}`;
  return WORDS[key] ? t(key) : type;
};

/** Approve what the screen shows: `period.approved` to the events service's `POST /v1/events`
 *  with the login's cookie (it lets the dashboard's origin do so), then the screen again once
 *  reporting has applied it (min_seq). A refusal is said next to the button. */
async function approve(button) {
  const said = $("#approve-error");
  button.disabled = true;
  said.textContent = t("approving");
  try {
    const r = await fetch(new URL("/v1/events", choices.forms_url), {
      method: "POST", credentials: "include", headers: { "Content-Type": "application/json",
        Accept: "application/json", "Accept-Language": en() ? "en" : "zh-CN" },
      body: JSON.stringify({ event_id: uuid4(), type: "period.approved", version: 1,
        occurred_at: new Date().toISOString(), source: "tongxin-dashboard",
        data: JSON.parse(button.dataset.approve) }) });
    if (!r.ok) throw new Error(await refusal(r));
    readAfter = Math.max(readAfter, (await r.json()).seq || 0);
  } catch (err) {
    said.textContent = `${t("approveFailed")}: ${err.message}`;
    button.disabled = false;
    return;
  }
  // Reporting waits a few seconds for min_seq, else 503: ask again until it has applied it.
  const scope_ = JSON.parse(button.dataset.approve);
  for (let tries = 0; tries < 20; tries += 1) {
    try {
      await api("/v1/reports/approvals", { period: scope_.period,
        organization_id: scope_.organization_id, region: scope_.region });
      break;
    } catch (err) {
      if (!String(err.message).startsWith("503")) break;
    }
  }
  await render(false);
}

function uuid4() {
  // crypto.randomUUID needs a secure context; an intranet address over http is not one.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

SCREENS.needs = async () => {
  const params = { ...scope(), group_by: "category" };
  const monthly = { ...scope(), group_by: "month" };
  const [r, months, items, late] = await Promise.all([api("/v1/reports/needs", params),
    api("/v1/reports/needs", monthly),
    api("/v1/reports/needs/items", { ...scope(), state: "open", limit: 20 }),
    api("/v1/reports/needs/items", { ...scope(), followup: "overdue", limit: 1000 })]);
  const tot = r.totals;
  r.rows = relabel(r.rows, "category");
  const itemsPath = "/v1/reports/needs/items";
  // The 12345 rates (三率): each with what it is made of, so a rate is never read alone.
  const rates = [["response_rate", "responseRate", "pct"], ["response_due", "responseDue"],
    ["responded_on_time", "respondedOnTime"], ["never_claimed", "neverClaimed"],
    ["resolution_rate", "resolutionRate", "pct"], ["settled", "settled"], ["solved", "solved"],
    ["satisfaction_rate", "satisfactionRate", "pct"], ["answered", "answered"],
    ["answered_satisfied", "answeredSatisfied"], ["answered_partly", "answeredPartly"],
    ["answered_unsatisfied", "answeredUnsatisfied"],
    ["reopened_after_unsatisfied", "reopenedUnsatisfied"]];
  return [r.as_of, `<section id="need-states">${cards([["needsTotal", tot.total], ["open", tot.open, 0, tot.open > 0],
    ["claimed", tot.claimed], ["resolved", tot.resolved], ["closed", tot.closed],
    ["followupsOverdue", tot.followups_overdue, 0, tot.followups_overdue > 0],
    ["possibleDuplicates", tot.possible_duplicates, 0, tot.possible_duplicates > 0]])}</section>`
    + `<section id="need-rates">${cards([["responseRate", tot.response_rate, "pct"],
      ["resolutionRate", tot.resolution_rate, "pct"],
      ["satisfactionRate", tot.satisfaction_rate, "pct"]])}</section>`
    + section(`${t("oldest")} (${num(items.total)})`, table([
      [(row) => momentText(row.submitted_at), "submitted", "text"],
      ["title", "need", "text"], ["base_label", "base", "text"],
      [(row) => codeLabel("service_type", row.category, row.category_label), "category", "text"],
      [(row) => word("urgency", row.urgency), "urgency", "text"],
      [duplicateCell, "duplicateOf", "html"]], items.rows),
    itemsPath, { ...scope(), state: "open" }, "oldest-needs")
    + section(`${t("followupsDue")} (${num(late.total)})`, listing("followups", [
      [(row) => dayText(row.followup && row.followup.due_on), "followupDue", "text", "due"],
      ["title", "need", "text"], ["base_label", "base", "text"],
      [(row) => row.organization_label || "—", "claimer", "text"],
      [(row) => word("status", row.state), "status", "text"]],
    late.rows.map((row) => ({ ...row, due: row.followup && row.followup.due_on })), null, [0, 1]),
    itemsPath, { ...scope(), followup: "overdue" }, "followups-overdue")
    + section(t("ratesByMonth"), table([["label", "month", "text"], ...rates], months.rows,
      months.totals), "/v1/reports/needs", monthly, "need-rates-by-month")
    + section(t("byCategory"), table([["label", "category", "text"], ["total", "needsTotal"],
      ["open", "open"], ["claimed", "claimed"], ["resolved", "resolved"], ["closed", "closed"],
      ["median_hours_to_claim", "medianClaim"], ["followups_overdue", "followupsOverdue"],
      ["response_rate", "responseRate", "pct"], ["resolution_rate", "resolutionRate", "pct"],
      ["satisfaction_rate", "satisfactionRate", "pct"]],
    r.rows, tot), "/v1/reports/needs", params)];
};

SCREENS.timeliness = async () => {
  const params = scope();
  // Overdue as at the same day the coverage screen counts to: now, or the end of the
  // period's last day when that is earlier.
  const at = asAtDay(), ended = at && at !== choices.today;
  const missParams = ended ? { ...params, at: `${nextDay(at)}T00:00:00` } : params;
  const [r, miss] = await Promise.all([api("/v1/reports/timeliness", params),
    api("/v1/reports/timeliness/missing", missParams)]);
  const tot = r.totals;
  const overdue = r.rows.filter((row) => row.missing > 0);
  const named = overdue.length ? `<p class="named" id="overdue-units">${overdue.map((row) =>
    (en() ? `${esc(row.label)} (${num(row.missing)})` : `${esc(row.label)}（${num(row.missing)}）`))
    .join(en() ? ", " : "、")}</p>` : `<p>${t("noneOverdue")}</p>`;
  return [r.as_of, `<section>${cards([["onTimeRate", tot.on_time_rate, "pct"], ["due", tot.due],
    ["on_time", tot.on_time], ["late", tot.late, 0, tot.late > 0],
    ["missing", tot.missing, 0, tot.missing > 0], ["scheduled", tot.scheduled],
    ["missed", tot.missed, 0, tot.missed > 0]])}</section>`
    + section(t("overdueUnits"), named)
    + section(`${t("missingList")} (${num(miss.rows.length)})`, `<p class="note" id="overdue-definition">${
      t("asAt")} ${ended ? esc(dayText(at)) : esc(t("now"))}${esc(t("overdueDef"))}</p>` + listing("missing",
      [["organization_name", "unit", "text"], ["title", "title", "text"],
        ["base_name", "base", "text"], [(row) => momentText(row.due_at), "dueAt", "text", "due_at"],
        ["days_overdue", "daysOverdue"]], miss.rows, null, [4, -1]),
    "/v1/reports/timeliness/missing", missParams, "missing-list")
    + section(`${t("timeliness")} (${num(r.rows.length)})`, listing("timeliness",
      [["label", "unit", "text"], ["scheduled", "scheduled"],
        ["missed", "missed"], ["due", "due"], ["on_time", "on_time"], ["late", "late"],
        ["missing", "missing"], ["pending", "pending"], ["on_time_rate", "onTimeRate", "pct"]],
      r.rows, tot, [6, -1]), "/v1/reports/timeliness", params, "timeliness-table")];
};

// Volunteers: hours by how they were recorded — signed in and out, self-reported, entered by an
// organiser, imported — side by side and never added into one another; sign-ins never signed
// out are counted apart (they have no hours). For the unit picked; sorted, paged, filtered.
SCREENS.volunteers = async () => {
  const p = state().p;
  const params = scope();
  const r = await api("/v1/reports/volunteers", params);
  const by = (method) => (row) => (row.hours_by_method || {})[method] ?? 0;
  const tot = r.totals;
  const pick = `<div class="pick"><label>${t("unit")} <select data-param="org">${
    [["", t("all")], ...choices.units.map((u) => [u.id, u.name])].map(([id, name]) =>
      `<option value="${esc(id)}"${id === (p.get("org") || "") ? " selected" : ""}>${esc(name)}</option>`)
      .join("")}</select></label></div>`;
  return [r.as_of, section(`${t("volunteerLedger")} (${num(r.total)})`, pick
    + cards([["volunteersCount", tot.volunteers], ["hoursConfirmed", tot.hours_confirmed],
      ["hoursUnconfirmed", tot.hours_unconfirmed],
      ["bySignIn", by("sign_in")(tot)], ["bySelf", by("self")(tot)],
      ["byOrganiser", by("organiser")(tot)], ["byImport", by("import")(tot)],
      ["openSignIns", tot.open_sign_ins, null, tot.open_sign_ins > 0]])
    + listing("volunteers", [["name", "person", "text"], ["organization_name", "unit", "text"],
      ["hours_confirmed", "hoursConfirmed"], ["hours_unconfirmed", "hoursUnconfirmed"],
      [by("sign_in"), "bySignIn"], [by("self"), "bySelf"], [by("organiser"), "byOrganiser"],
      [by("import"), "byImport"], ["open_sign_ins", "openSignIns"],
      ["activities", "activitiesAttended"], ["star_level", "star"]], r.rows, tot, [2, -1]),
  "/v1/reports/volunteers", params, "volunteer-list")];
};

SCREENS.coverage = async () => {
  const p = state().p;
  const idle = p.get("idle") || "90";
  const at = asAtDay();  // the clock's today (or the period's end), never the newest data's
  const idleParams = { ...scope(), idle_days: idle, ...(at ? { at } : {}) };
  const campaigns = choices.campaigns;
  const campaign = p.get("campaign") || (campaigns[0] || {}).id;
  const [r, c] = await Promise.all([api("/v1/reports/coverage", idleParams),
    campaign ? api("/v1/reports/coverage", { ...scope(), campaign_id: campaign }) : null]);
  const pickIdle = `<div class="pick"><label>${t("idleDays")} <select data-param="idle">${
    ["30", "90", "180", "365"].map((d) => `<option${d === idle ? " selected" : ""}>${d}</option>`)
      .join("")}</select></label> <span id="as-at">${t("asAt")} <b>${esc(dayText(r.at || at || ""))}</b></span></div>`
    + `<p class="note" id="idle-definition">${t("asAt")} ${esc(dayText(r.at || at || ""))}${
      esc(t("idleDef"))}</p>`;
  let out = section(`${t("idleBases")} (${num(r.rows.length)})`, pickIdle + table([
    ["label", "base", "text"], [(row) => regionName(row.region_code), "region", "text"],
    [(row) => (row.last_activity ? dayText(row.last_activity) : row.last_visit ? "—" : t("never")),
      "lastActivity", "text"],
    [(row) => (row.last_visit ? dayText(row.last_visit) : "—"), "lastVisit", "text"],
    ["days_idle", "daysIdle"]], r.rows), "/v1/reports/coverage", idleParams, "idle-bases");
  if (!campaign) return [r.as_of, out + section(t("campaign"), `<p>${t("noCampaign")}</p>`)];
  const pick = `<div class="pick"><label>${t("campaign")} <select data-param="campaign">${
    campaigns.map((x) => `<option value="${esc(x.id)}"${x.id === campaign ? " selected" : ""}>${
      esc(x.name)}</option>`).join("")}</select></label></div>`;
  const tot = c.totals;
  out += section(`${t("campaign")} · ${c.campaign ? c.campaign.name || "" : ""}`, pick
    + `<div id="campaign-totals">${cards([["bases", tot.bases], ["households", tot.households],
      ["visited", tot.visited], ["coverageRate", tot.coverage, "pct"], ["visits", tot.visits]])}</div>`
    + table([["label", "base", "text"], ["households", "households"], ["visited", "visited"],
      ["coverage", "coverageRate", "pct"], ["visits", "visits"], ["volunteers", "volunteers"]],
    c.rows, tot), "/v1/reports/coverage", { ...scope(), campaign_id: campaign }, "campaign");
  out += section(`${t("notVisited")} (${num(c.not_visited.length)})`, table([
    ["label", "base", "text"], ["households", "households"]], c.not_visited));
  return [r.as_of, out];
};

SCREENS.assessment = async () => {
  const p = state().p;
  const years = choices.years;
  const year = p.get("year") || years[0];
  if (!year) return [null, section(t("assessment"), `<p>${t("noYear")}</p>`)];
  const { from, to, ...within } = scope();  // the year is the period here
  const params = { ...within, year };
  const r = await api("/v1/reports/assessment", params);
  const pick = `<div class="pick"><label>${t("year")} <select data-param="year">${years.map((y) =>
    `<option${String(y) === String(year) ? " selected" : ""}>${y}</option>`).join("")}</select></label></div>`;
  const parts = (row) => `<div class="parts">${row.components.map((c) =>
    `<span title="${esc(c.figure)} × ${esc(c.weight)}">${esc(figureLabel(c.figure))} ${
      c.figure === "on_time_rate" ? pct(c.value) : num(c.value)} → ${num(c.points)}</span>`)
    .join("")}</div>`;
  return [r.as_of, section(`${year} ${t("units")}`, pick + table([["rank", "rank"],
    ["label", "unit", "text"], ["score", "score"], [parts, "breakdown", "html"]], r.rows),
  "/v1/reports/assessment", params, "leaderboard")
    + section(t("people"), table([["rank", "rank"], ["name", "person", "text"],
      ["organization_name", "unit", "text"], ["hours_confirmed", "hoursConfirmed"],
      ["star_level", "star"]], r.individuals.slice(0, 50)))];
};

SCREENS.pairing = async () => {
  const p = state().p;
  const params = scope();
  const list = await api("/v1/reports/pairings", params);
  const id = p.get("pairing") || (list.rows[0] || {}).pairing_id;
  let out = "";
  if (id) {
    const one = await api(`/v1/reports/pairings/${encodeURIComponent(id)}`, params);
    const tot = one.totals;
    const items = (xs) => (xs.length ? `<ul>${xs.map((x) => `<li>${esc(x.title)}${
      x.status ? ` · ${esc(word("status", x.status))}` : ""}</li>`).join("")}</ul>`
      : `<p>${t("empty")}</p>`);
    const pick = `<div class="pick"><label>${t("pickPairing")} <select data-param="pairing">${
      list.rows.map((x) => `<option value="${esc(x.pairing_id)}"${x.pairing_id === id
        ? " selected" : ""}>${esc(x.name)}</option>`).join("")}</select></label></div>`;
    out += section(`${one.pairing.name} · ${one.pairing.organization_label} ⇄ ${
      one.pairing.base_label}`, pick + `<div id="pairing-totals">${cards([
      ["projects", tot.projects], ["projectsRun", tot.projects_fulfilled],
      ["fulfilment", tot.fulfilment_rate, "pct"], ["activities", tot.activities],
      ["served", tot.served], ["volunteer_hours", tot.volunteer_hours], ["open", one.needs.open],
      ["closed", one.needs.closed]])}</div><p class="note" id="fulfilment-definition">${
      esc(t("fulfilmentDef"))}</p>`)
      + section(`${t("needsList")} (${one.needs_list.length})`, items(one.needs_list)
        + cards([["needsTotal", one.needs.total], ["open", one.needs.open],
          ["claimed", one.needs.claimed], ["resolved", one.needs.resolved],
          ["closed", one.needs.closed]]))
      + section(`${t("resources")} (${one.resources.length})`, items(one.resources))
      + section(t("projectList"), table([
        [(row) => (row.unassigned ? t("unassigned") : row.title ?? row.project_id), "project", "text"],
        [(row) => (row.status === "done" && !row.activities
          ? `${word("status", row.status)} · ${t("noActivityLogged")}` : word("status", row.status)),
        "status", "text"],
        ["activities", "activities"], ["served", "served"], ["volunteer_hours", "volunteer_hours"]],
      one.rows, tot), `/v1/reports/pairings/${encodeURIComponent(id)}`, params, "projects");
  }
  out += section(t("pairings"), table([["name", "pairingName", "text"],
    ["organization_label", "unit", "text"], ["base_label", "base", "text"],
    ["projects", "projects"], ["projects_fulfilled", "projectsRun"],
    ["fulfilment_rate", "fulfilment", "pct"], ["activities", "activities"], ["served", "served"]],
  list.rows, list.totals, (row) => ({ pairing: row.pairing_id })), "/v1/reports/pairings", params);
  return [list.as_of, out];
};

// -- rendering, filters, language --------------------------------------------------------

async function render(quiet) {
  const mine = ++rendering;
  const { screen } = state();
  document.querySelectorAll("#tabs a").forEach((a) =>
    a.classList.toggle("on", a.dataset.screen === screen));
  if (!quiet) $("#screen").innerHTML = `<p>${t("loading")}</p>`;
  try {
    const [asOf, html] = await SCREENS[screen]();
    if (mine !== rendering) return;
    const typing = document.activeElement && document.activeElement.matches(".listing input.find")
      ? [document.activeElement.closest(".listing").dataset.list,
        document.activeElement.selectionStart] : null;
    $("#screen").innerHTML = html;
    if (typing) {  // a redraw (the 10 s poll) while typing in a list's filter box: keep typing
      const box = $(`#screen .listing[data-list="${CSS.escape(typing[0])}"] input.find`);
      if (box) { box.focus(); box.setSelectionRange(typing[1], typing[1]); }
    }
    $("#screen").dataset.screen = screen;
    $("#screen").dataset.width = String(window.innerWidth);  // the width it was drawn for
    // When the figures were read, by the clock; the event sequence stays on the element.
    $("#asof").textContent = `${t("updated")} ${momentText(new Date().toISOString())}`;
    $("#asof").dataset.seq = asOf === null ? "" : String(asOf);
  } catch (err) {
    if (mine !== rendering) return;
    if (!quiet) $("#screen").innerHTML = `<p class="error">${t("failed")}: ${esc(err.message)}</p>`;
  }
}

/** The report document (PDF) for the period the filters show: a whole year or quarter as
 *  such, else the month of the first day (default: the month of the last activity). */
function reportHref() {
  const p = state().p;
  const from = p.get("from") || "", to = p.get("to") || "";
  const day = from || to || choices.last_day || new Date().toISOString().slice(0, 10);
  const y = day.slice(0, 4);
  const quarters = [["01-01", "03-31"], ["04-01", "06-30"], ["07-01", "09-30"], ["10-01", "12-31"]];
  let period = day.slice(0, 7);
  if (from === `${y}-01-01` && to === `${y}-12-31`) period = y;
  quarters.forEach(([a, b], i) => {
    if (from === `${y}-${a}` && to === `${y}-${b}`) period = `${y}-Q${i + 1}`;
  });
  const params = { period, format: "pdf" };
  if (p.get("org")) params.organization_id = p.get("org");
  if (p.get("region")) params.region = p.get("region");
  if (en()) params.lang = "en";
  return url("/v1/reports/document", params);
}

function fillFilters() {
  const p = state().p;
  const f = $("#filters");
  f.from.value = p.get("from") || "";
  f.to.value = p.get("to") || "";
  const opt = (v, label, depth) => `<option value="${esc(v)}">${"\u3000".repeat(depth || 0)}${esc(label)}</option>`;
  f.org.innerHTML = opt("", t("all")) + choices.units.map((u) => opt(u.id, u.name)).join("");
  // Cities with their districts under them: towns and communities are reached by drilling.
  const cities = choices.regions.filter((r) => r.level === "city");
  const under = (id) => choices.regions.filter((r) => r.parent_id === id && r.level === "district");
  f.region.innerHTML = opt("", t("all")) + cities.map((c) => opt(c.id, c.name)
    + under(c.id).map((d) => opt(d.id, d.name, 1)).join("")).join("");
  if (p.get("region") && !f.region.querySelector(`option[value="${CSS.escape(p.get("region"))}"]`)) {
    const r = regionOf(p.get("region"));
    f.region.insertAdjacentHTML("beforeend", opt(p.get("region"), r ? r.name : p.get("region")));
  }
  f.org.value = p.get("org") || "";
  f.region.value = p.get("region") || "";
}

function translate() {
  document.documentElement.lang = en() ? "en" : "zh-CN";
  document.title = t("programme");
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  const lang = $("#lang");
  lang.textContent = en() ? "中文" : "English";
  $("#report").href = reportHref();
  const who = choices.who;
  $("#who").textContent = `${who.name} · ${word("role", who.role)}${
    who.organization_name ? " · " + who.organization_name : ""}`;
}

function wire() {
  const f = $("#filters");
  for (const [field, param] of [["from", "from"], ["to", "to"], ["org", "org"], ["region", "region"]]) {
    f[field].addEventListener("change", () => go({ [param]: f[field].value, base: null }));
  }
  $("#clear").addEventListener("click", () => go({ from: null, to: null, org: null, region: null, base: null }));
  $("#lang").addEventListener("click", (e) => { e.preventDefault(); go({ lang: en() ? null : "en" }); });
  $("#tabs").addEventListener("click", (e) => {
    const a = e.target.closest("a[data-screen]");
    if (a) go({}, a.dataset.screen);
  });
  wireListings($("#screen"));
  // Clicks and picks inside a screen: drill-downs, sub-tabs, pickers.
  $("#screen").addEventListener("click", (e) => {
    const approving = e.target.closest("button[data-approve]");
    if (approving) { approve(approving); return; }
    const more = e.target.closest("a[data-screen-go]");
    if (more) { go({}, more.dataset.screenGo); return; }
    const row = e.target.closest("tr[data-drill]");
    if (row) { go(JSON.parse(row.dataset.drill)); return; }
    const a = e.target.closest("a[data-go]");
    if (a) go(JSON.parse(a.dataset.go));
  });
  $("#screen").addEventListener("change", (e) => {
    const sel = e.target.closest("select[data-param]");
    if (sel) go({ [sel.dataset.param]: sel.value });
  });
  window.addEventListener("hashchange", () => { fillFilters(); translate(); render(false); showNotices(); });
  // The charts are drawn to the width there is: a turned phone or a resized window redraws.
  let lastWidth = window.innerWidth;
  let resized = null;
  window.addEventListener("resize", () => {
    if (window.innerWidth === lastWidth) return;
    lastWidth = window.innerWidth;
    clearTimeout(resized);
    resized = setTimeout(() => {  // unless a render since has drawn it for this width
      if ($("#screen").dataset.width !== String(window.innerWidth)) render(true);
    }, 250);
  });
}

// -- notifications: history, then live over server-sent events ---------------------------

let notices = [];
let refreshSoon = null;

function showNotices() {
  $("#notices").innerHTML = notices.slice(0, 30).map((n) => `<li class="${n.fresh ? "new" : ""}">`
    + `<time>${esc(momentText(n.occurred_at))}</time>`
    + `${esc(en() ? n.message_en : n.message_zh)}</li>`).join("");
}

async function listen() {
  try {
    const history = await api("/v1/notifications", { limit: 30 });
    notices = history.items.filter((n) => !seenNotices.has(n.notification_id));
    notices.forEach((n) => seenNotices.add(n.notification_id));
    showNotices();
  } catch (err) { /* the panel stays empty; the figures do not depend on it */ }
  const source = new EventSource("/v1/notifications/stream");
  source.onopen = () => { $("#live").classList.add("on"); $("#live").title = t("liveOn"); };
  source.onerror = () => $("#live").classList.remove("on");
  const arrived = (e) => {
    const n = JSON.parse(e.data);
    if (seenNotices.has(n.notification_id)) return;
    seenNotices.add(n.notification_id);
    notices.unshift({ ...n, fresh: true });
    showNotices();
    // What caused it has changed the figures too; a burst (a bulk import) refreshes once.
    clearTimeout(refreshSoon);
    refreshSoon = setTimeout(() => render(true), 1000);
  };
  for (const kind of ["need_submitted", "report_due_soon", "report_overdue", "followup_overdue",
    "milestone", "message"]) source.addEventListener(kind, arrived);
}

async function start() {
  try {
    choices = await api("/v1/dashboard/choices");
  } catch (err) {
    $("#screen").innerHTML = `<p class="error">${esc(err.message)}</p>`;
    return;
  }
  $("#forms").href = choices.forms_url;
  fillFilters();
  translate();
  wire();
  await render(false);
  listen();
  // Figures change without a notification too (an activity logged elsewhere): a cheap poll.
  setInterval(() => { if (!document.hidden) render(true); }, 10000);
}

start();
