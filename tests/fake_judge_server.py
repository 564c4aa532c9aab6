#!/usr/bin/env python3
"""fake_judge_server.py: a small OpenAI-compatible chat-completions server for
tests/test_judge_http.cpp. It grades like an exact checker and misbehaves on command.

Verdict: the rubric item's last word (commands removed) occurs as a word in the graded response
(the text after the conversation's last "assistant: " in data/grader_template.txt's prompt).
Commands are written into a criterion's text as [[name]] (every attempt) or [[name:N]] (only the
first N attempts of that prompt; later ones are answered normally):
  500       HTTP 500                        drop     close the connection without a reply
  slow      answer after 2.5 s (a timeout)    garbage  a completion whose content holds no verdict
  badjson   a body that is not JSON         404      HTTP 404 (not worth retrying)
  fence     the JSON in ```json fences      prose    prose around the JSON object
  bare      content "true" / "false"        think    a <think>...</think> block first
  delay:MS  answer after MS milliseconds (the concurrency test)
GET /stats: {"posts", "max_in_flight", "auth" (last Authorization header), "model" (last "model")}.
Prints "port N" on stdout once listening (port 0 on the command line: any free port).
"""
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"posts": 0, "in_flight": 0, "max_in_flight": 0, "auth": "", "model": "", "attempts": {}}
COMMAND = re.compile(r"\[\[(\w+)(?::(\d+))?\]\]")


def parse_prompt(prompt):
    convo = prompt.split("# Conversation\n", 1)[1].split("\n\n# Rubric item\n", 1)[0]
    item = prompt.split("\n\n# Rubric item\n", 1)[1].split("\n\n# Instructions", 1)[0]
    response = convo.rsplit("\n\nassistant: ", 1)[-1]
    return response, item


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body):
        # A request stops counting as in flight before its reply goes out: once the client has the
        # reply it may start the next request, which must not find this one still counted.
        self.done()
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def done(self):
        if getattr(self, "counted", False):
            self.counted = False
            with LOCK:
                STATE["in_flight"] -= 1

    def do_GET(self):
        with LOCK:
            stats = {k: v for k, v in STATE.items() if k != "attempts"}
        self.send(200, json.dumps(stats))

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        with LOCK:
            STATE["posts"] += 1
            STATE["in_flight"] += 1
            STATE["max_in_flight"] = max(STATE["max_in_flight"], STATE["in_flight"])
            STATE["auth"] = self.headers.get("Authorization", "")
            STATE["model"] = body.get("model", "")
            attempt = STATE["attempts"].get(prompt, 0) + 1
            STATE["attempts"][prompt] = attempt
        self.counted = True
        try:
            self.answer(prompt, attempt)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout)
        finally:
            self.done()  # no reply sent (a dropped connection, the client's timeout)

    def answer(self, prompt, attempt):
        response, item = parse_prompt(prompt)
        active = {}
        for name, n in COMMAND.findall(item):
            if name == "delay" or not n or attempt <= int(n):
                active[name] = int(n) if n else 0
        words = re.findall(r"[a-z]+", COMMAND.sub("", item).lower())
        met = bool(words) and re.search(r"\b" + words[-1] + r"\b", response.lower()) is not None
        if "delay" in active:
            time.sleep(active["delay"] / 1000)
        if "slow" in active:
            time.sleep(2.5)
        if "drop" in active:
            self.close_connection = True
            return
        if "500" in active:
            return self.send(500, '{"error": "overloaded"}')
        if "404" in active:
            return self.send(404, '{"error": "no such model"}')
        if "badjson" in active:
            return self.send(200, '{"choices": [{"message": {"content": ')
        verdict = json.dumps({"explanation": "checked the words", "criteria_met": met}, indent=2)
        content = verdict
        if "garbage" in active:
            content = "I cannot decide."
        elif "fence" in active:
            content = "```json\n" + verdict + "\n```"
        elif "prose" in active:
            content = "Here is my grade {as asked}:\n" + verdict + "\nThanks."
        elif "bare" in active:
            content = "true" if met else "false"
        elif "think" in active:
            content = '<think>"criteria_met": ' + ("false" if met else "true") + "</think>\n" + verdict
        reply = {"id": "x", "object": "chat.completion",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
        self.send(200, json.dumps(reply))


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
