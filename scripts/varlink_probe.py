#!/usr/bin/env python3
"""Talks to a losad control socket with the PyPI `varlink` package (a client
nobody here wrote) and prints what it saw as one JSON object.

usage: varlink_probe.py SOCKET read      GetInfo, GetInterfaceDescription, Status,
                                         ListJobs, GetJob, Metrics and a streaming Watch
       varlink_probe.py SOCKET access    a read, then Submit and Cancel (run as another user)
       varlink_probe.py SOCKET job ID    against a real daemon: GetInfo, GetInterfaceDescription,
                                         Status, a streaming Watch of job ID to its end, then
                                         GetJob, ListJobs and Metrics

Every reply is also checked against the interface definition the service
serves, as parsed by varlink's own scanner: each declared non-optional field
present, no undeclared field, every value of its declared type.
"""
import json
import sys

import varlink
from varlink import scanner


def check(value, vtype, interface, where, problems):
    """Appends to `problems` every way `value` differs from varlink type `vtype`."""
    if isinstance(vtype, scanner._CustomType):
        member = interface.members.get(vtype.name)
        if member is None:
            problems.append(f"{where}: unknown type {vtype.name}")
            return
        vtype = member.type
    if isinstance(vtype, scanner._Alias):
        vtype = vtype.type
    if isinstance(vtype, scanner._Maybe):
        if value is not None:
            check(value, vtype.element_type, interface, where, problems)
        return
    if value is None:
        problems.append(f"{where}: null for a non-optional value")
    elif isinstance(vtype, scanner._Struct):
        if not isinstance(value, dict):
            problems.append(f"{where}: {type(value).__name__} where an object is declared")
            return
        for name, field in vtype.fields.items():
            if name in value:
                check(value[name], field, interface, f"{where}.{name}", problems)
            elif not isinstance(field, scanner._Maybe):
                problems.append(f"{where}.{name}: missing")
        for name in value:
            if name not in vtype.fields:
                problems.append(f"{where}.{name}: not declared")
    elif isinstance(vtype, scanner._Enum):
        if value not in list(vtype.fields):
            problems.append(f"{where}: {value!r} is not one of {list(vtype.fields)}")
    elif isinstance(vtype, scanner._Array):
        if not isinstance(value, list):
            problems.append(f"{where}: not an array")
        else:
            for index, element in enumerate(value):
                check(element, vtype.element_type, interface, f"{where}[{index}]", problems)
    elif isinstance(vtype, scanner._Dict):
        if not isinstance(value, dict):
            problems.append(f"{where}: not a map")
        else:
            for key, element in value.items():
                check(element, vtype.element_type, interface, f"{where}[{key}]", problems)
    elif isinstance(vtype, scanner._Object):
        pass
    elif isinstance(vtype, bool):
        if not isinstance(value, bool):
            problems.append(f"{where}: {value!r} is not a bool")
    elif isinstance(vtype, int):
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}: {value!r} is not an int")
    elif isinstance(vtype, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{where}: {value!r} is not a float")
    elif isinstance(vtype, str):
        if not isinstance(value, str):
            problems.append(f"{where}: {value!r} is not a string")
    else:
        problems.append(f"{where}: cannot check type {vtype!r}")


def raw_call(sock, method, parameters, more=False):
    """Sends one call on a plain socket and returns the raw replies (to check
    them before the client library filters them)."""
    message = {"method": method, "parameters": parameters}
    if more:
        message["more"] = True
    sock.sendall(json.dumps(message).encode() + b"\0")
    replies, buffer = [], b""
    while True:
        while b"\0" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buffer += chunk
        text, buffer = buffer.split(b"\0", 1)
        reply = json.loads(text)
        replies.append(reply)
        if not reply.get("continues"):
            return replies


def read(address):
    result = {}
    with varlink.Client(address=address) as client:
        service = client.open("org.varlink.service")
        result["info"] = service.GetInfo()
        result["description"] = service.GetInterfaceDescription("io.losa.Manager")["description"]
        manager = client.open("io.losa.Manager")
        result["status"] = manager.Status()
        result["watch"] = [reply for reply in manager.Watch(2, _more=True)]
        try:
            manager.GetJob(99)
            result["missing"] = None
        except varlink.VarlinkError as error:
            result["missing"] = {"error": error.error(), "parameters": error.parameters()}

        # The same replies unfiltered, checked field by field against the interface.
        interface = varlink.Interface(result["description"])
        problems = []
        sock = client.open_connection()
        calls = [("Status", {}, False), ("ListJobs", {}, False), ("GetJob", {"id": 1}, False),
                 ("GetJob", {"id": 2}, False), ("Metrics", {}, False), ("Watch", {"id": 2}, True)]
        checked = 0
        for name, parameters, more in calls:
            method = interface.get_method(name)
            for reply in raw_call(sock, "io.losa.Manager." + name, parameters, more):
                if "error" in reply:
                    problems.append(f"{name}: error {reply['error']}")
                    continue
                check(reply.get("parameters", {}), method.out_type, interface, name, problems)
                checked += 1
        sock.close()
        result["checkedReplies"] = checked
        result["problems"] = problems
    return result


def access(address):
    result = {}
    with varlink.Client(address=address) as client:
        manager = client.open("io.losa.Manager")
        result["status"] = manager.Status()["state"]
        result["jobs"] = len(manager.ListJobs()["jobs"])
        for name, call in [("submit", lambda: manager.Submit("/srv/models/new.gguf")),
                           ("cancel", lambda: manager.Cancel(2))]:
            try:
                call()
                result[name] = {"error": None}
            except varlink.VarlinkError as error:
                result[name] = {"error": error.error(), "parameters": error.parameters()}
    return result


def follow_job(address, job):
    """What a generic client sees of a real job: discovery, Status, and Watch
    until the job's last reply; every reply checked against the interface."""
    result = {}
    with varlink.Client(address=address) as client:
        service = client.open("org.varlink.service")
        result["info"] = service.GetInfo()
        result["description"] = service.GetInterfaceDescription("io.losa.Manager")["description"]
        interface = varlink.Interface(result["description"])
        manager = client.open("io.losa.Manager")
        result["status"] = manager.Status()
        problems = []
        check(result["status"], interface.get_method("Status").out_type, interface, "Status", problems)
        result["watch"] = []
        for reply in manager.Watch(job, _more=True):
            check(reply, interface.get_method("Watch").out_type, interface, "Watch", problems)
            result["watch"].append(reply)
        sock = client.open_connection()
        for name, parameters in [("GetJob", {"id": job}), ("ListJobs", {}), ("Metrics", {})]:
            for reply in raw_call(sock, "io.losa.Manager." + name, parameters):
                if "error" in reply:
                    problems.append(f"{name}: error {reply['error']}")
                    continue
                check(reply.get("parameters", {}), interface.get_method(name).out_type, interface, name, problems)
                result[name] = reply.get("parameters", {})
        sock.close()
        result["problems"] = problems
    return result


def main():
    socket_path, mode = sys.argv[1], sys.argv[2]
    address = "unix:" + socket_path
    if mode == "read":
        result = read(address)
    elif mode == "job":
        result = follow_job(address, int(sys.argv[3]))
    else:
        result = access(address)
    json.dump(result, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
