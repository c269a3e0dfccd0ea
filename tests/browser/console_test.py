#!/usr/bin/env python3
"""The CSR web console in a real browser: Debian's headless chromium through chromium-driver and
python3-selenium, against a running cablekey-prov (tests/interop/t_prov_console.sh starts the
daemons and prepares the device).

Drives what a customer-service representative does while the customer is on the phone: sign in
(a wrong password first), find the calling device by its unprovisioned IP, create the customer,
provision (with a double click: it must act once), move to another segment, send to repair
(a repair-facility account created from the page), return from repair, de-provision, and an
action the device's state forbids (a clear error, nothing changed). After each step a
screenshot goes to the artifacts directory and, with --hook, `HOOK STEP` runs so the caller can
check the other systems' view (the KDC's device table, the CLI).

Output: one line per check, "STEP ok DESC" or "STEP fail DESC: DETAIL", for the shell to turn
into TAP. Exit status 0 when every check passed. A missing selenium, chromium or driver is a
failure, never a skip.

With --device-side (tests/interop/t_prov_done.sh, the issue's "Done when" with the whole system
running: cablekey-kdc, cablekey-prov, cablekey-cms, a `cablekey mta` phone adapter) the hook
makes the device act as the seed says (fetch its certificate, reboot, log in again) and checks
that the device table, the KDC, cablekey-cms and the device agree, and the refreshed page must
then show the certificate as fetched by the device.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback

RESULTS = {"fail": 0, "ok": 0}


def report(ok, desc, detail=""):
    RESULTS["ok" if ok else "fail"] += 1
    line = "STEP %s %s" % ("ok" if ok else "fail", desc)
    if not ok and detail:
        line += ": " + " ".join(str(detail).split())[:600]
    print(line, flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="the console, http://127.0.0.1:PORT")
    ap.add_argument("--principal", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--ip", required=True, help="the device's unprovisioned IP")
    ap.add_argument("--mac", required=True, help="the device's MAC, canonical")
    ap.add_argument("--segment", required=True, help="the customer's segment")
    ap.add_argument("--move-segment", required=True)
    ap.add_argument("--artifacts", required=True)
    ap.add_argument("--hook", help="command run as HOOK STEP after each step")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--driver", default="/usr/bin/chromedriver")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--hook-timeout", type=float, default=300.0)
    ap.add_argument("--device-side", action="store_true",
                    help="after each hook, the page must show the certificate fetched")
    ap.add_argument("--shot-prefix", default="console", help="screenshot file name prefix")
    args = ap.parse_args()

    try:
        from selenium import webdriver
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select, WebDriverWait
    except ImportError as e:
        report(False, "python3-selenium is installed", e)
        return 1
    for tool, what in ((args.chromium, "chromium"), (args.driver, "chromium-driver")):
        if not os.access(tool, os.X_OK):
            report(False, "%s is installed" % what, "%s not found" % tool)
            return 1
    os.makedirs(args.artifacts, exist_ok=True)
    with open(args.password_file, encoding="utf-8") as f:
        password = f.readline().rstrip("\n")

    profile = tempfile.mkdtemp(prefix="ck-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = args.chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--no-first-run", "--no-default-browser-check", "--disable-extensions",
              "--disable-background-networking", "--disable-sync", "--disable-translate",
              "--metrics-recording-only", "--proxy-server=direct://", "--proxy-bypass-list=*",
              "--window-size=1280,2200", "--user-data-dir=" + profile):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=args.driver), options=opts)
    except Exception as e:  # the driver or the browser did not start: a failure
        report(False, "headless chromium starts through chromium-driver", e)
        return 1
    report(True, "headless chromium starts through chromium-driver")
    driver.set_page_load_timeout(args.timeout)
    shot_n = [0]

    def shot(name):
        shot_n[0] += 1
        path = os.path.join(args.artifacts,
                            "%s-%02d-%s.png" % (args.shot_prefix, shot_n[0], name))
        try:
            driver.save_screenshot(path)
        except Exception as e:
            report(False, "screenshot %s" % name, e)

    def el(i):
        return driver.find_element(By.ID, i)

    def txt(i):
        # textContent, not .text: the page styles some values in upper case.
        return (el(i).get_attribute("textContent") or "").strip()

    def wait(desc, cond):
        try:
            WebDriverWait(driver, args.timeout, poll_frequency=0.1).until(lambda d: cond())
            return True
        except TimeoutException:
            err = ""
            try:
                if el("error").is_displayed():
                    err = " (error shown: %s)" % txt("error")
            except Exception:
                pass
            report(False, desc, "timed out; status %r%s" % (safe_txt("status"), err))
            return False

    def safe_txt(i):
        try:
            return txt(i)
        except Exception:
            return ""

    def fill(i, value):
        e = el(i)
        e.clear()
        e.send_keys(value)

    def hook(step):
        if not args.hook:
            return
        try:
            r = subprocess.run(args.hook + " " + step, shell=True, capture_output=True,
                               text=True, timeout=args.hook_timeout)
            report(r.returncode == 0, "after %s: the device acted, every view agrees" % step,
                   (r.stdout + r.stderr).strip())
        except subprocess.TimeoutExpired:
            report(False, "after %s: the device acted, every view agrees" % step,
                   "the hook took more than %ss" % args.hook_timeout)

    def device_side(step):
        """After the hook: the device fetched its certificate; the page, refreshed, says so."""
        if not args.device_side:
            return
        el("device-refresh").click()
        if wait("after %s: the page shows the certificate fetched by the device" % step,
                lambda: "fetched by the device" in txt("device-cert")):
            report(True, "after %s: the page shows the certificate fetched by the device" % step)
        shot(step + "-device")

    def history_actions():
        return [r.get_attribute("data-action")
                for r in driver.find_elements(By.CSS_SELECTOR, "#device-history-body tr")]

    def busy():
        return any(not b.is_enabled() for b in driver.find_elements(By.CSS_SELECTOR,
                                                                     "button[id$='-btn']"))

    def check(desc, cond, detail=""):
        """cond must hold within a few seconds (the page fills some fields asynchronously)."""
        deadline = time.monotonic() + 5
        while True:
            try:
                ok, err = bool(cond()), ""
            except Exception as e:
                ok, err = False, str(e)
            if ok or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if not ok and callable(detail):
            detail = detail()
        return report(ok, desc, "%s %s" % (detail, err))

    def act_and_wait(button, desc, expect_state, done_prefix):
        el(button).click()
        ok = wait(desc, lambda: safe_txt("status").startswith(done_prefix) and not busy())
        if ok:
            check("%s: state %s" % (desc, expect_state),
                  lambda: txt("device-state") == expect_state,
                  lambda: "state %r" % safe_txt("device-state"))
        return ok

    try:
        # -- the page, its CSP-clean load ------------------------------------------------------
        driver.get(args.url + "/")
        if not wait("the console page loads", lambda: el("login-form").is_displayed() and
                    driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1"):
            shot("load")
            return 1
        report(True, "the console page loads")
        check("the page has labelled login fields",
              lambda: driver.find_element(By.CSS_SELECTOR, "label[for=login-principal]") and
              driver.find_element(By.CSS_SELECTOR, "label[for=login-password]"))
        shot("login-page")

        # -- a wrong password: refused, a clear message ----------------------------------------
        fill("login-principal", args.principal)
        fill("login-password", password + "-wrong")
        el("login-submit").click()
        if wait("a wrong password is refused with a message",
                lambda: el("error").is_displayed() and txt("error") != ""):
            check("after a wrong password the CSR is still signed out",
                  lambda: not el("app").is_displayed() and el("login-form").is_displayed())
            report(True, "a wrong password is refused with a message")
        shot("login-refused")

        # -- sign in ---------------------------------------------------------------------------
        fill("login-principal", args.principal)
        fill("login-password", password)
        el("login-submit").click()
        if not wait("the CSR signs in with principal and password",
                    lambda: el("app").is_displayed() and txt("whoami") != ""):
            shot("login-failed")
            return 1
        report(True, "the CSR signs in with principal and password")
        check("the session shows who is signed in", lambda: args.principal in txt("whoami"),
              txt("whoami"))
        check("the password field is cleared", lambda: el("login-password").get_attribute(
            "value") == "")
        shot("signed-in")

        # -- find the calling device by its unprovisioned IP -----------------------------------
        Select(el("search-kind")).select_by_value("ip")
        fill("search-value", args.ip)
        el("search-submit").click()
        if not wait("the device is found by its unprovisioned IP",
                    lambda: el("device-panel").is_displayed() and txt("device-mac") == args.mac):
            shot("search-failed")
            return 1
        report(True, "the device is found by its unprovisioned IP")
        check("it is unprovisioned, with that IP",
              lambda: txt("device-state") == "unprovisioned" and
              txt("device-unprov-ip") == args.ip,
              lambda: "state %r ip %r" % (safe_txt("device-state"), safe_txt("device-unprov-ip")))
        check("the search lists it", lambda: driver.find_element(
            By.CSS_SELECTOR, "#search-results-body tr[data-mac='%s']" % args.mac))
        shot("device-found")
        hook("found")

        # -- enter the customer ----------------------------------------------------------------
        fill("cust-name", "Ann Example")
        fill("cust-address", "1 Main Street, Springfield")
        fill("cust-email", "ann@example.net")
        fill("cust-segment", args.segment)
        Select(el("cust-type")).select_by_value("customer")
        el("cust-create").click()
        if not wait("the customer is created", lambda: el("customer-selected").get_attribute(
                "data-id") not in (None, "")):
            shot("customer-failed")
            return 1
        report(True, "the customer is created")
        cust_id = el("customer-selected").get_attribute("data-id")
        shot("customer-created")

        # -- provision: a double click acts once ----------------------------------------------
        ActionChains(driver).double_click(el("provision-btn")).perform()
        if wait("the device is provisioned",
                lambda: safe_txt("status").startswith("Device provisioned") and not busy()):
            report(True, "the device is provisioned")
        check("state provisioned, for the customer, with a number and a certificate",
              lambda: txt("device-state") == "provisioned" and
              txt("device-customer").find("#" + cust_id) >= 0 and
              txt("device-numbers") not in ("", "-") and
              txt("device-cert").startswith("#"),
              lambda: "state %r customer %r numbers %r cert %r" % (
                  safe_txt("device-state"), safe_txt("device-customer"),
                  safe_txt("device-numbers"), safe_txt("device-cert")))
        check("the KDC's view in the page: active", lambda: txt("device-kdc-state") == "active",
              lambda: safe_txt("device-kdc-state"))
        check("a double click provisioned once (one provision event)",
              lambda: history_actions().count("provision") == 1, lambda: history_actions())
        first_number = safe_txt("device-numbers")
        shot("provisioned")
        hook("provisioned")
        device_side("provisioned")

        # -- move to another segment with a new number -----------------------------------------
        fill("move-segment", args.move_segment)
        el("move-number").clear()
        if act_and_wait("move-btn", "the device is moved", "provisioned", "Device moved"):
            report(True, "the device is moved")
        check("moved: the new segment and a new number",
              lambda: txt("device-segment") == args.move_segment and
              txt("device-numbers") not in ("", "-", first_number),
              lambda: "segment %r numbers %r (before %r)" % (safe_txt("device-segment"),
                                                     safe_txt("device-numbers"), first_number))
        shot("moved")
        hook("moved")
        device_side("moved")

        # -- repair: a repair-facility account, then repair ------------------------------------
        fill("cust-name", "Repair Depot")
        fill("cust-address", "9 Service Road")
        el("cust-email").clear()
        fill("cust-segment", args.move_segment)
        Select(el("cust-type")).select_by_value("repair")
        prev = el("customer-selected").get_attribute("data-id")
        el("cust-create").click()
        wait("the repair facility account is created",
             lambda: el("customer-selected").get_attribute("data-id") not in (None, "", prev))
        facility = el("customer-selected").get_attribute("data-id")
        fill("repair-facility", facility)
        if act_and_wait("repair-btn", "the device goes to repair", "repair",
                        "Device sent to repair"):
            report(True, "the device goes to repair")
        check("in repair: the facility's account, the owner kept",
              lambda: txt("device-customer").find("#" + facility) >= 0 and
              txt("device-owner") == cust_id,
              lambda: "customer %r owner %r" % (safe_txt("device-customer"), safe_txt("device-owner")))
        shot("repair")
        hook("repair")
        device_side("repair")

        # -- return from repair ----------------------------------------------------------------
        if act_and_wait("return-btn", "the device returns to its owner", "provisioned",
                        "Device returned"):
            report(True, "the device returns to its owner")
        check("returned: the owner's account again",
              lambda: txt("device-customer").find("#" + cust_id) >= 0,
              lambda: safe_txt("device-customer"))
        shot("returned")
        hook("returned")
        device_side("returned")

        # -- de-provision ----------------------------------------------------------------------
        fill("deprov-reason", "customer cancelled")
        if act_and_wait("deprovision-btn", "the device is de-provisioned", "unprovisioned",
                        "Device de-provisioned"):
            report(True, "the device is de-provisioned")
        check("de-provisioned: no numbers, KDC view unprovisioned",
              lambda: txt("device-numbers") == "-" and
              txt("device-kdc-state") == "unprovisioned",
              lambda: "numbers %r kdc %r" % (safe_txt("device-numbers"), safe_txt("device-kdc-state")))
        shot("deprovisioned")
        hook("deprovisioned")

        # -- an action the state forbids: a clear error, nothing changed -----------------------
        # A controller's report of the device may land meanwhile (--device-side: the device is
        # live); what must not appear is an action.
        def actions():
            return [a for a in history_actions() if a != "reported"]
        before = actions()
        el("return-btn").click()
        if wait("an action in the wrong state shows the API's error",
                lambda: el("error").is_displayed() and txt("error") != "" and not busy()):
            report(True, "an action in the wrong state shows the API's error")
        check("the error names the state", lambda: "unprovisioned" in txt("error").lower(),
              lambda: safe_txt("error"))
        el("device-refresh").click()
        time.sleep(0.5)
        wait("the refresh completes", lambda: txt("device-mac") == args.mac)
        check("nothing changed (same history, still unprovisioned)",
              lambda: actions() == before and txt("device-state") == "unprovisioned",
              lambda: "%r -> %r" % (before, actions()))
        shot("wrong-state")

        # -- the history holds every step ------------------------------------------------------
        acts = history_actions()
        check("the history shows every step, newest first",
              lambda: [a for a in acts if a in ("provision", "move", "repair", "return",
                                                "deprovision")][:5] ==
              ["deprovision", "return", "repair", "move", "provision"], acts)

        # -- the page ran under its CSP without a violation or a script error ------------------
        try:
            logs = driver.get_log("browser")
        except Exception:
            logs = []
        bad = [entry["message"] for entry in logs if entry.get("level") == "SEVERE" and
               ("Content Security Policy" in entry["message"] or
                "Uncaught" in entry["message"])]
        check("no CSP violation or script error in the browser console", lambda: not bad, bad)

        # -- sign out ------------------------------------------------------------------------
        el("logout").click()
        if wait("the CSR signs out", lambda: el("login-form").is_displayed()):
            report(True, "the CSR signs out")
        shot("signed-out")
    except Exception:
        report(False, "the browser run completed", traceback.format_exc())
        try:
            shot("exception")
        except Exception:
            pass
    finally:
        try:
            driver.quit()
        except Exception:
            pass
    return 0 if RESULTS["fail"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
