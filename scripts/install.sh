#!/usr/bin/env bash
# Installs or removes losad as a system service: `make install` / `make uninstall` run this.
#
#   scripts/install.sh install     (BUILT=the folder with the losad and losactl binaries)
#   scripts/install.sh uninstall
#
# Layout, from the environment (the Makefile passes its variables; these are the defaults):
#   PREFIX=/usr/local  DESTDIR=  (a staging root: nothing is run on the machine then)
#   BINDIR=$PREFIX/bin                     losad, losactl
#   UNITDIR=$PREFIX/lib/systemd/system     losad.service (ExecStart= is rewritten for BINDIR), losad.socket
#   SYSUSERSDIR=$PREFIX/lib/sysusers.d     losad.conf: the user and group losad
#   TMPFILESDIR=$PREFIX/lib/tmpfiles.d     losad.conf: /var/lib/losad and its inbox and outbox
#   SYSCONFDIR=/etc                        losad/losad.toml, never overwritten (a changed default
#                                          arrives beside it as losad.toml.new)
#   DATADIR=$PREFIX/share                  bash-completion/completions, zsh/site-functions,
#                                          fish/vendor_completions.d, varlink/io.losa.Manager.varlink,
#                                          doc/losad (README.md and the default losad.toml)
# systemd reads units, sysusers.d and tmpfiles.d from both /usr/lib and /usr/local/lib; for
# another PREFIX set UNITDIR=/etc/systemd/system SYSUSERSDIR=/etc/sysusers.d TMPFILESDIR=/etc/tmpfiles.d.
set -euo pipefail

repository=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
BUILT=${BUILT:-}
BINDIR=${BINDIR:-$PREFIX/bin}
DATADIR=${DATADIR:-$PREFIX/share}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
SYSUSERSDIR=${SYSUSERSDIR:-$PREFIX/lib/sysusers.d}
TMPFILESDIR=${TMPFILESDIR:-$PREFIX/lib/tmpfiles.d}
BASHCOMPLETIONDIR=${BASHCOMPLETIONDIR:-$DATADIR/bash-completion/completions}
ZSHCOMPLETIONDIR=${ZSHCOMPLETIONDIR:-$DATADIR/zsh/site-functions}
FISHCOMPLETIONDIR=${FISHCOMPLETIONDIR:-$DATADIR/fish/vendor_completions.d}
VARLINKDIR=${VARLINKDIR:-$DATADIR/varlink}
DOCDIR=${DOCDIR:-$DATADIR/doc/losad}
for name in PREFIX BINDIR DATADIR SYSCONFDIR UNITDIR SYSUSERSDIR TMPFILESDIR DOCDIR; do
    [[ "${!name}" == /* ]] || { echo "install.sh: $name must be an absolute path, not '${!name}'" >&2; exit 2; }
done

# Every installed file but the configuration, one a line: how it is made (copy: from SOURCE;
# unit: a unit file with this layout's paths; bash, zsh, fish: the completion script
# SOURCE writes), SOURCE, destination, mode.
files() {
    for program in losad losactl; do
        echo "copy $BUILT/$program $BINDIR/$program 0755"
        echo "bash $BUILT/$program $BASHCOMPLETIONDIR/$program 0644"
        echo "zsh $BUILT/$program $ZSHCOMPLETIONDIR/_$program 0644"
        echo "fish $BUILT/$program $FISHCOMPLETIONDIR/$program.fish 0644"
    done
    echo "unit $repository/systemd/losad.service $UNITDIR/losad.service 0644"
    echo "unit $repository/systemd/losad.socket $UNITDIR/losad.socket 0644"
    echo "copy $repository/systemd/losad.sysusers.conf $SYSUSERSDIR/losad.conf 0644"
    echo "copy $repository/systemd/losad.tmpfiles.conf $TMPFILESDIR/losad.conf 0644"
    echo "copy $repository/Sources/Control/io.losa.Manager.varlink $VARLINKDIR/io.losa.Manager.varlink 0644"
    echo "copy $repository/README.md $DOCDIR/README.md 0644"
    echo "copy $repository/Config/losad.toml $DOCDIR/losad.toml 0644"
}

# A unit file with this installation's paths (those in systemd/ have the default PREFIX's).
unit_file() {
    sed -e "s|/usr/local/bin/|$BINDIR/|g" \
        -e "s|/usr/local/share/doc/losad/|$DOCDIR/|g" \
        -e "s|/etc/losad/|$SYSCONFDIR/losad/|g" \
        "$1"
}

# On the machine itself (no DESTDIR) and with systemd there: create the user and folders now.
on_this_machine() { [ -z "$DESTDIR" ]; }
systemd_running() { on_this_machine && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

install_all() {
    [ -n "$BUILT" ] && [ -x "$BUILT/losad" ] && [ -x "$BUILT/losactl" ] \
        || { echo "install.sh: BUILT must name the folder with the built losad and losactl (make install does)" >&2; exit 2; }
    while read -r kind source destination mode; do
        install -d -m 0755 "$DESTDIR$(dirname "$destination")"
        # Written beside, then renamed: a running losad or shell never sees half a file.
        case "$kind" in
            copy) cp "$source" "$DESTDIR$destination.tmp" ;;
            unit) unit_file "$source" > "$DESTDIR$destination.tmp" ;;
            *) "$source" --generate-completion-script "$kind" > "$DESTDIR$destination.tmp" ;;
        esac
        chmod "$mode" "$DESTDIR$destination.tmp"
        mv -f "$DESTDIR$destination.tmp" "$DESTDIR$destination"
        echo "installed $DESTDIR$destination"
    done < <(files)

    # The configuration is the administrator's: installed once, never replaced.
    config=$DESTDIR$SYSCONFDIR/losad/losad.toml
    install -d -m 0755 "$(dirname "$config")"
    if [ ! -e "$config" ]; then
        install -m 0644 "$repository/Config/losad.toml" "$config"
        echo "installed $config"
    elif cmp -s "$repository/Config/losad.toml" "$config"; then
        echo "kept $config (the same as the new default)"
    else
        install -m 0644 "$repository/Config/losad.toml" "$config.new"
        echo "kept $config; this version's default is in $config.new (compare them: diff -u $config $config.new)"
    fi

    if on_this_machine; then
        if [ "$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null; then
            systemd-sysusers "$SYSUSERSDIR/losad.conf"
            systemd-tmpfiles --create "$TMPFILESDIR/losad.conf"
        else
            echo "as root, create the user and folders: systemd-sysusers $SYSUSERSDIR/losad.conf && systemd-tmpfiles --create $TMPFILESDIR/losad.conf"
        fi
        if systemd_running; then systemctl daemon-reload; fi
        echo "start it with: systemctl enable --now losad.socket losad.service"
    fi
}

uninstall_all() {
    if systemd_running && [ "$(id -u)" = 0 ]; then
        systemctl disable --now losad.service losad.socket 2>/dev/null || true
    fi
    while read -r _ _ destination _; do
        if [ -e "$DESTDIR$destination" ]; then rm -f "$DESTDIR$destination" && echo "removed $DESTDIR$destination"; fi
    done < <(files)
    rmdir "$DESTDIR$DOCDIR" "$DESTDIR$VARLINKDIR" 2>/dev/null || true
    if systemd_running; then systemctl daemon-reload; fi
    echo "kept $DESTDIR$SYSCONFDIR/losad (configuration), /var/lib/losad (ledger, inbox, outbox) and the user losad;"
    echo "remove them with: rm -r $SYSCONFDIR/losad /var/lib/losad && userdel losad"
}

case "${1:-}" in
    install) install_all ;;
    uninstall) uninstall_all ;;
    *) sed -n '4,5p' "${BASH_SOURCE[0]}" | sed 's/^#  *//' >&2; exit 2 ;;
esac
