/* report.html's only script, inlined into the page at render: tabs, filters, sorting and the URL fragment
   (#lists?owner=…&severity=…&sort=…) that presets and shares them. */
(function(){
  var root = document.documentElement; root.classList.add('js');
  var $ = function(s, el){ return (el || document).querySelector(s); };
  var $$ = function(s, el){ return Array.prototype.slice.call((el || document).querySelectorAll(s)); };
  var panels = $$('.owner-panel'), tabs = $$('.tabs [role=tab]');
  var ctl = {q: $('#f-q'), category: $('#f-category'), severity: $('#f-severity'), status: $('#f-status'),
             entity: $('#f-entity'), waived: $('#f-waived')};
  var rows = $$('table.list tbody tr.d');
  rows.forEach(function(r){ r._t = r.textContent.toLowerCase(); });
  var sortState = {col: null, dir: 'asc'};
  var SELECTS = ['category', 'severity', 'status', 'entity', 'waived'];
  function toLists(){
    var l = $('#lists'); if (!l) return;
    window.scrollTo({top: l.getBoundingClientRect().top + window.scrollY - 50, behavior: 'instant'});
  }
  var fmt = function(n){ return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, '\u202f'); };

  function activate(owner){
    var found = false;
    tabs.forEach(function(t){ var on = t.dataset.owner === owner; found = found || on;
      t.classList.toggle('active', on); t.setAttribute('aria-selected', on ? 'true' : 'false'); });
    if (!found) return false;
    panels.forEach(function(p){ p.classList.toggle('active', p.dataset.owner === owner); });
    return true;
  }
  function current(){ var t = $('.tabs .tab.active'); return t ? t.dataset.owner : ''; }
  function apply(){
    var terms = ctl.q.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    var f = {cat: ctl.category.value, sev: ctl.severity.value, status: ctl.status.value,
             entity: ctl.entity.value, waived: ctl.waived.value};
    panels.forEach(function(p){
      var n = 0, trs = $$('tbody tr.d', p);
      trs.forEach(function(r){
        var d = r.dataset, ok = true;
        if (f.cat && d.cat !== f.cat) ok = false;
        else if (f.sev && d.sev !== f.sev) ok = false;
        else if (f.status === 'open' && d.status === 'resolved') ok = false;
        else if (f.status && f.status !== 'open' && d.status !== f.status) ok = false;
        else if (f.entity && d.entity !== f.entity) ok = false;
        else if (f.waived && d.waived !== f.waived) ok = false;
        else for (var i = 0; i < terms.length; i++) { if (r._t.indexOf(terms[i]) < 0) { ok = false; break; } }
        r.hidden = !ok; if (ok) n++;
      });
      p.dataset.shown = n;
      var s = $('.shown', p); if (s) s.textContent = fmt(n);
      var nm = $('.nomatch', p); if (nm) nm.hidden = !(trs.length && n === 0);
      var tab = $('#tab-' + p.id.slice(6) + ' .cnt');
      if (tab) tab.textContent = (n === trs.length && trs.length === +tab.dataset.total) ? fmt(tab.dataset.total)
                                  : fmt(n) + ' / ' + fmt(tab.dataset.total);
    });
    root.dataset.filtered = (terms.length || f.cat || f.sev || f.status || f.entity || f.waived) ? '1' : '0';
  }
  function key(r, col){
    var c = r.children[col]; if (!c) return '';
    return c.hasAttribute('data-k') ? c.getAttribute('data-k') : c.textContent.trim();
  }
  function sortBy(col, dir){
    sortState = {col: col, dir: dir};
    $$('table.list').forEach(function(t){
      var tb = t.tBodies[0]; if (!tb) return;
      var trs = Array.prototype.slice.call(tb.rows);
      trs.forEach(function(r, i){ if (r._i === undefined) r._i = i; });
      trs.sort(function(a, b){
        var x = key(a, col), y = key(b, col);
        if (x === '' && y !== '') return 1; if (y === '' && x !== '') return -1;
        var c = x.localeCompare(y, undefined, {numeric: true, sensitivity: 'base'});
        if (c === 0) return a._i - b._i;
        return dir === 'desc' ? -c : c;
      });
      var frag = document.createDocumentFragment(); trs.forEach(function(r){ frag.appendChild(r); });
      tb.appendChild(frag);
      $$('thead th', t).forEach(function(th){
        th.setAttribute('aria-sort', +th.dataset.col === col ? (dir === 'desc' ? 'descending' : 'ascending') : 'none');
      });
    });
  }
  function colOf(name){
    var b = $('table.list thead button[data-sort="' + name + '"]');
    return b ? +b.parentNode.dataset.col : null;
  }
  function writeHash(){
    var p = new URLSearchParams();
    var o = current(); if (o && tabs.length && o !== tabs[0].dataset.owner) p.set('owner', o);
    if (ctl.q.value.trim()) p.set('q', ctl.q.value.trim());
    SELECTS.forEach(function(k){ if (ctl[k].value) p.set(k, ctl[k].value); });
    if (root.classList.contains('focus-lists')) p.set('focus', '1');
    if (sortState.col !== null) {
      var b = $('table.list thead th[data-col="' + sortState.col + '"] button');
      if (b) { p.set('sort', b.dataset.sort); if (sortState.dir === 'desc') p.set('dir', 'desc'); }
    }
    var s = p.toString();
    try { history.replaceState(null, '', s ? '#lists?' + s : location.pathname + location.search); } catch (err) {}
  }
  function readHash(){
    var h = location.hash || '', i = h.indexOf('?');
    if (i < 0) return false;
    var p = new URLSearchParams(h.slice(i + 1));
    if (p.get('owner')) activate(p.get('owner'));
    setFocus(p.get('focus') === '1');
    ctl.q.value = p.get('q') || '';
    SELECTS.forEach(function(k){ ctl[k].value = p.get(k) || ''; });
    var sc = p.get('sort') ? colOf(p.get('sort')) : null;
    if (sc !== null) sortBy(sc, p.get('dir') === 'desc' ? 'desc' : 'asc');
    apply();
    toLists();
    return true;
  }
  function setFocus(on){
    root.classList.toggle('focus-lists', on);
    var b = $('#f-focus'); if (b) { b.setAttribute('aria-pressed', on ? 'true' : 'false');
      b.textContent = on ? 'Whole report' : 'Lists only'; }
  }
  $('#f-focus').addEventListener('click', function(){
    setFocus(!root.classList.contains('focus-lists')); writeHash();
    toLists();
  });
  tabs.forEach(function(t){ t.addEventListener('click', function(){ activate(t.dataset.owner); writeHash(); }); });
  var timer = null;
  ctl.q.addEventListener('input', function(){
    clearTimeout(timer); timer = setTimeout(function(){ apply(); writeHash(); }, 120); });
  SELECTS.forEach(function(k){
    ctl[k].addEventListener('change', function(){ apply(); writeHash(); }); });
  $('#f-clear').addEventListener('click', function(){
    ctl.q.value = ''; SELECTS.forEach(function(k){ ctl[k].value = ''; });
    apply(); writeHash(); });
  $$('table.list thead button').forEach(function(b){
    b.addEventListener('click', function(){
      var col = +b.parentNode.dataset.col;
      var dir = (sortState.col === col && sortState.dir === 'asc') ? 'desc' : 'asc';
      sortBy(col, dir); writeHash();
    });
  });
  window.addEventListener('hashchange', readHash);
  if (!readHash()) apply();
  root.dataset.ready = '1';
})();
