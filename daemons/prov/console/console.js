/* cablekey provisioning console: the CSR's page over cablekey-prov's JSON API
 * (docs/cablekey-prov.md). Plain script, no framework and no build step; served under CSP
 * default-src 'self', so it never uses inline handlers, eval or innerHTML (every value from the
 * API is put in the page as text).
 *
 * Session: POST /api/v1/session sets the HttpOnly cookie; the CSRF token it answers stays in
 * this script's memory only (never in storage a page of another origin could read) and goes in
 * X-CK-CSRF on every request that changes something.
 *
 * Double clicks and retries: every action gets a random Idempotency-Key. The key is kept while
 * the same action with the same body has not had an answer (a timeout, a lost connection), so
 * pressing the button again retries the same request and the server never acts twice; an
 * answered request (success or a clear refusal) ends it, and the next press is a new action. */
'use strict';

(function () {
  var API = '/api/v1';
  var csrf = null;
  var busy = false;
  var current = null;          /* the device record shown */
  var selectedCustomer = null; /* {id, name} */
  var pending = {};            /* action signature -> Idempotency-Key without an answer yet */

  function $(id) { return document.getElementById(id); }

  function newKey() {
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    var s = 'ck-';
    for (var i = 0; i < b.length; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16);
    return s;
  }

  /* A path segment; a canonical MAC keeps its colons (readable in the server's logs). */
  function seg(s) { return encodeURIComponent(String(s)).replace(/%3A/gi, ':'); }

  function fmtTime(t) {
    if (t === null || t === undefined || t === 0) return '-';
    return new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  }

  /* A flag the API gives as a boolean (or as the time it happened). */
  function yesNo(v) {
    if (typeof v === 'number' && v > 0) return fmtTime(v);
    return v ? 'yes' : 'no';
  }

  function text(v) {
    if (v === null || v === undefined || v === '') return '-';
    if (Array.isArray(v)) return v.length ? v.join(', ') : '-';
    return String(v);
  }

  /* ------------------------------------------------------------- messages */

  function showError(msg) {
    var e = $('error');
    e.textContent = msg;
    e.hidden = false;
    $('status').textContent = '';
  }

  function showStatus(msg) {
    $('error').hidden = true;
    $('error').textContent = '';
    $('status').textContent = msg;
  }

  /* The API's {"error":{"code","field","message"}} as one sentence for the CSR. */
  function apiMessage(status, body) {
    var err = body && body.error;
    if (!err) return 'The server answered HTTP ' + status + ' without an explanation.';
    var m = err.message || err.code || ('HTTP ' + status);
    if (err.field) m += ' (field: ' + err.field + ')';
    switch (err.code) {
      case 'unauthenticated': return 'Your session has ended: please sign in again. ' + m;
      case 'forbidden': return 'Not allowed for your account: ' + m;
      case 'not_found': return 'Not found: ' + m;
      case 'wrong_state': return 'Not possible in the device\'s current state: ' + m;
      case 'conflict': return 'Conflict: ' + m;
      case 'invalid_field': case 'invalid_json': return 'Please check the input: ' + m;
      default: return m;
    }
  }

  /* ------------------------------------------------------------- the API */

  function ApiError(status, body, message) {
    this.status = status;
    this.body = body;
    this.message = message;
    this.answered = status > 0;
  }

  /* method, path, body (object or undefined), idem (Idempotency-Key or undefined). Resolves
   * with {status, body}; rejects with ApiError. */
  function api(method, path, body, idem) {
    var headers = { 'Accept': 'application/json' };
    var init = { method: method, headers: headers, credentials: 'same-origin',
                 cache: 'no-store', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (method !== 'GET' && csrf) headers['X-CK-CSRF'] = csrf;
    if (idem) headers['Idempotency-Key'] = idem;
    return fetch(path, init).then(function (r) {
      return r.text().then(function (t) {
        var parsed = null;
        if (t) {
          try { parsed = JSON.parse(t); } catch (e) { parsed = null; }
        }
        if (r.ok) return { status: r.status, body: parsed };
        if (r.status === 401 && path !== API + '/session') signedOut();
        throw new ApiError(r.status, parsed, apiMessage(r.status, parsed));
      });
    }, function () {
      throw new ApiError(0, null, 'No answer from the server (network error): press the ' +
                         'button again to retry the same request; it will not be done twice.');
    });
  }

  /* One user action: the button is disabled meanwhile, a second press is ignored, the key is
   * reused only when the previous attempt had no answer. */
  function act(button, sig, method, path, body, done) {
    if (busy) return;
    busy = true;
    button.disabled = true;
    var key = pending[sig] || newKey();
    pending[sig] = key;
    showStatus('Working...');
    /* Every action is idempotent on the server but the sign-in, which takes no key. */
    var idem = (method === 'POST' || method === 'PATCH') && path !== API + '/session' ? key
                                                                                      : undefined;
    api(method, path, body, idem).then(function (res) {
      delete pending[sig];
      return done(res);
    }).catch(function (e) {
      if (!(e instanceof ApiError)) e = new ApiError(-1, null, String(e && e.message || e));
      if (e.answered) delete pending[sig];
      showError(e.message);
    }).then(function () {
      busy = false;
      button.disabled = false;
    });
  }

  /* ------------------------------------------------------------- session */

  function signedIn(who) {
    $('whoami').textContent = who;
    $('session-box').hidden = false;
    $('login-section').hidden = true;
    $('app').hidden = false;
    $('login-password').value = '';
    $('search-value').focus();
  }

  function signedOut() {
    csrf = null;
    current = null;
    selectedCustomer = null;
    $('session-box').hidden = true;
    $('app').hidden = true;
    $('device-panel').hidden = true;
    $('login-section').hidden = false;
  }

  function onLogin(ev) {
    ev.preventDefault();
    var principal = $('login-principal').value.trim();
    var password = $('login-password').value;
    if (!principal || !password) { showError('Enter your principal and password.'); return; }
    act($('login-submit'), 'login', 'POST', API + '/session',
        { principal: principal, password: password }, function (res) {
      $('login-password').value = '';
      csrf = res.body && res.body.csrf;
      if (!csrf) { showError('The server did not answer a CSRF token.'); return; }
      signedIn(res.body.principal || principal);
      showStatus('Signed in.');
    });
  }

  function onLogout() {
    act($('logout'), 'logout', 'DELETE', API + '/session', undefined, function () {
      signedOut();
      showStatus('Signed out.');
    });
  }

  /* A session cookie from before a reload is usable only if the server hands the token again;
   * otherwise the CSR signs in anew. */
  function resume() {
    api('GET', API + '/session').then(function (res) {
      if (res.body && res.body.csrf) {
        csrf = res.body.csrf;
        signedIn(res.body.principal);
      }
    }).catch(function () { /* not signed in */ });
  }

  /* ------------------------------------------------------------- search */

  function cell(tr, value, cls) {
    var td = document.createElement('td');
    td.textContent = text(value);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function stateCell(el, state) {
    el.textContent = text(state);
    el.className = 'state state-' + String(state || '').replace(/[^a-z]/g, '');
  }

  function onSearch(ev) {
    ev.preventDefault();
    var kind = $('search-kind').value;
    var value = $('search-value').value.trim();
    if (!value) { showError('Enter what to search for.'); return; }
    var q = API + '/devices?' + encodeURIComponent(kind) + '=' + encodeURIComponent(value) +
            '&limit=50';
    act($('search-submit'), 'search', 'GET', q, undefined, function (res) {
      var list = (res.body && res.body.devices) || [];
      var tb = $('search-results-body');
      tb.textContent = '';
      list.forEach(function (d) {
        var tr = document.createElement('tr');
        tr.setAttribute('data-mac', d.mac);
        cell(tr, d.mac, 'hash');
        stateCell(cell(tr, d.state), d.state);
        cell(tr, d.numbers);
        cell(tr, d.customer);
        cell(tr, d.unprov_ip);
        cell(tr, fmtTime(d.last_seen));
        var td = document.createElement('td');
        var b = document.createElement('button');
        b.type = 'button';
        b.className = 'open-device';
        b.textContent = 'Open';
        b.setAttribute('aria-label', 'Open device ' + d.mac);
        b.addEventListener('click', function () { openDevice(d.mac); });
        td.appendChild(b);
        tr.appendChild(td);
        tb.appendChild(tr);
      });
      if (list.length === 0) {
        showError('No device found for ' + kind + ' ' + value + '.');
      } else {
        showStatus(list.length + ' device' + (list.length > 1 ? 's' : '') + ' found.');
        if (list.length === 1) return loadDevice(list[0].mac);
      }
    });
  }

  /* ------------------------------------------------------------- device */

  function loadDevice(mac) {
    return api('GET', API + '/devices/' + seg(mac)).then(function (res) {
      renderDevice(res.body);
    });
  }

  function openDevice(mac) {
    if (busy) return;
    busy = true;
    loadDevice(mac).then(function () {
      showStatus('Device ' + mac + '.');
    }, function (e) {
      showError(e.message);
    }).then(function () { busy = false; });
  }

  /* The search result's row of this device follows its record. */
  function updateRow(d) {
    var rows = $('search-results-body').querySelectorAll('tr');
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute('data-mac') !== d.mac) continue;
      var c = rows[i].children;
      stateCell(c[1], d.state);
      c[2].textContent = text(d.numbers);
      c[3].textContent = text(d.customer);
    }
  }

  function renderCert(c) {
    if (!c) return 'none (manufacturer certificate only)';
    return '#' + c.id + ' SHA-256 ' + c.sha256 + ', valid ' + fmtTime(c.not_before) + ' to ' +
           fmtTime(c.not_after) + (c.acked ? ', fetched by the device' : ', not yet fetched');
  }

  function renderDevice(d) {
    if (!d || !d.mac) return;
    current = d;
    $('device-panel').hidden = false;
    $('device-mac').textContent = d.mac;
    stateCell($('device-state'), d.state);
    $('device-kdc-state').textContent = text(d.kdc_state);
    $('device-principal').textContent = text(d.principal);
    $('device-customer').textContent = text(d.customer);
    $('device-owner').textContent = text(d.owner);
    $('device-loaner-for').textContent = text(d.loaner_for);
    $('device-numbers').textContent = text(d.numbers);
    $('device-segment').textContent = text(d.segment);
    $('device-fqdn').textContent = text(d.fqdn);
    $('device-ipv4').textContent = text(d.ipv4);
    $('device-unprov-ip').textContent = text(d.unprov_ip);
    $('device-reported-by').textContent = text(d.reported_by);
    $('device-cert').textContent = renderCert(d.cert);
    updateRow(d);
    if (d.customer) {
      api('GET', API + '/customers/' + seg(d.customer)).then(function (res) {
        if (current && current.mac === d.mac && res.body)
          $('device-customer').textContent = res.body.name + ' (#' + res.body.id + ', ' +
                                              res.body.type + ')';
      }).catch(function () { /* the id alone is shown */ });
    }
    if (Array.isArray(d.certs)) {
      var ct = $('device-certs-body');
      ct.textContent = '';
      d.certs.forEach(function (c) {
        var tr = document.createElement('tr');
        cell(tr, c.id);
        cell(tr, c.sha256, 'hash');
        cell(tr, fmtTime(c.not_before));
        cell(tr, fmtTime(c.not_after));
        cell(tr, yesNo(c.acked));
        cell(tr, yesNo(c.superseded));
        ct.appendChild(tr);
      });
    }
    if (Array.isArray(d.history)) {
      var ht = $('device-history-body');
      ht.textContent = '';
      d.history.forEach(function (e) {
        var tr = document.createElement('tr');
        tr.setAttribute('data-action', e.action);
        cell(tr, fmtTime(e.time));
        cell(tr, e.action);
        cell(tr, e.actor);
        cell(tr, e.customer);
        cell(tr, e.detail && Object.keys(e.detail).length ? JSON.stringify(e.detail) : '');
        ht.appendChild(tr);
      });
    }
  }

  /* An action on the device shown: POST, then the full record (history, certificates). */
  function deviceAction(button, action, body, doneMsg) {
    if (!current) { showError('Open a device first.'); return; }
    var mac = current.mac;
    var path = API + '/devices/' + seg(mac) + '/' + action;
    act(button, action + ' ' + mac + ' ' + JSON.stringify(body), 'POST', path, body,
        function (res) {
      var replayed = res.body && res.body.replayed;
      renderDevice(res.body);
      return loadDevice(mac).then(function () {
        showStatus(doneMsg + (replayed ? ' (already done: the earlier request was answered)'
                                       : ''));
      }, function () {
        showStatus(doneMsg);
      });
    });
  }

  function intField(id, what) {
    var v = $(id).value.trim();
    if (!/^[0-9]{1,18}$/.test(v) || Number(v) <= 0) {
      showError(what + ' must be a positive number.');
      return null;
    }
    return Number(v);
  }

  function optional(body, key, id) {
    var v = $(id).value.trim();
    if (v) body[key] = v;
  }

  /* ------------------------------------------------------------- customers */

  function selectCustomer(c) {
    selectedCustomer = { id: c.id, name: c.name };
    $('customer-selected').textContent = c.name + ' (#' + c.id + ')';
    $('customer-selected').setAttribute('data-id', String(c.id));
  }

  function onCustomerFind(ev) {
    ev.preventDefault();
    var q = $('customer-q').value.trim();
    act($('customer-find'), 'customers', 'GET',
        API + '/customers?limit=50' + (q ? '&q=' + encodeURIComponent(q) : ''), undefined,
        function (res) {
      var sel = $('customer-select');
      sel.textContent = '';
      var list = (res.body && res.body.customers) || [];
      list.forEach(function (c) {
        var o = document.createElement('option');
        o.value = String(c.id);
        o.textContent = c.name + ' (#' + c.id + ', ' + c.type + ', ' + c.address + ')';
        sel.appendChild(o);
      });
      if (list.length === 0) showError('No customer matches "' + q + '".');
      else showStatus(list.length + ' customer' + (list.length > 1 ? 's' : '') + ' found.');
    });
  }

  function onCustomerPick() {
    var sel = $('customer-select');
    if (sel.selectedIndex < 0) { showError('Find a customer first.'); return; }
    var o = sel.options[sel.selectedIndex];
    selectCustomer({ id: Number(o.value), name: o.textContent });
    showStatus('Customer selected.');
  }

  function onCustomerCreate(ev) {
    ev.preventDefault();
    var body = {
      name: $('cust-name').value.trim(),
      address: $('cust-address').value.trim(),
      segment: $('cust-segment').value.trim(),
      type: $('cust-type').value,
      services: {}
    };
    optional(body, 'email', 'cust-email');
    act($('cust-create'), 'customer ' + JSON.stringify(body), 'POST', API + '/customers', body,
        function (res) {
      var c = res.body;
      selectCustomer(c);
      showStatus('Customer ' + c.name + ' created (#' + c.id + ').');
    });
  }

  /* ------------------------------------------------------------- actions */

  function onProvision(ev) {
    ev.preventDefault();
    if (!selectedCustomer) { showError('Select or create the customer first.'); return; }
    var body = { customer: selectedCustomer.id };
    optional(body, 'number', 'prov-number');
    optional(body, 'segment', 'prov-segment');
    deviceAction($('provision-btn'), 'provision', body, 'Device provisioned.');
  }

  function onMove(ev) {
    ev.preventDefault();
    var body = { segment: $('move-segment').value.trim() };
    optional(body, 'number', 'move-number');
    deviceAction($('move-btn'), 'move', body, 'Device moved.');
  }

  function onRepair(ev) {
    ev.preventDefault();
    var f = intField('repair-facility', 'The repair facility account id');
    if (f === null) return;
    deviceAction($('repair-btn'), 'repair', { facility: f }, 'Device sent to repair.');
  }

  function onReturn() {
    deviceAction($('return-btn'), 'return', {}, 'Device returned to its owner.');
  }

  function onLoaner(ev) {
    ev.preventDefault();
    var c = intField('loaner-customer', 'The customer id');
    if (c === null) return;
    deviceAction($('loaner-btn'), 'loaner', { customer: c, 'for': $('loaner-for').value.trim() },
                 'Loaner provisioned.');
  }

  function onChangeService(ev) {
    ev.preventDefault();
    var services;
    try {
      services = JSON.parse($('svc-json').value);
    } catch (e) {
      showError('Service options: not valid JSON (' + e.message + ').');
      return;
    }
    if (services === null || typeof services !== 'object' || Array.isArray(services)) {
      showError('Service options must be a JSON object, e.g. {"voicemail": true}.');
      return;
    }
    deviceAction($('change-service-btn'), 'change-service',
                 { services: services, reissue: $('svc-reissue').checked },
                 'Service changed.');
  }

  function onDeprovision(ev) {
    ev.preventDefault();
    deviceAction($('deprovision-btn'), 'deprovision',
                 { reason: $('deprov-reason').value.trim() }, 'Device de-provisioned.');
  }

  function onRefresh() {
    if (current) openDevice(current.mac);
  }

  function on(id, evname, fn) { $(id).addEventListener(evname, fn); }

  document.addEventListener('DOMContentLoaded', function () {
    on('login-form', 'submit', onLogin);
    on('logout', 'click', onLogout);
    on('search-form', 'submit', onSearch);
    on('device-refresh', 'click', onRefresh);
    on('customer-find-form', 'submit', onCustomerFind);
    on('customer-pick', 'click', onCustomerPick);
    on('customer-create-form', 'submit', onCustomerCreate);
    on('provision-form', 'submit', onProvision);
    on('move-form', 'submit', onMove);
    on('repair-form', 'submit', onRepair);
    on('return-btn', 'click', onReturn);
    on('loaner-form', 'submit', onLoaner);
    on('service-form', 'submit', onChangeService);
    on('deprovision-form', 'submit', onDeprovision);
    document.body.setAttribute('data-ready', '1');
    resume();
  });
}());
