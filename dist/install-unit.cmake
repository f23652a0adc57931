# Run by `cmake --install`: writes the systemd unit template with the
# installed binary's path and installs it into PREFIX/lib/systemd/system
# (DESTDIR honoured, listed in install_manifest.txt like every other file).
# SNOOPFS_UNIT_IN and SNOOPFS_UNIT_TMP are set by CMakeLists.txt.
file(READ "${SNOOPFS_UNIT_IN}" unit)
string(REPLACE "@BINDIR@" "${CMAKE_INSTALL_PREFIX}/bin" unit "${unit}")
file(WRITE "${SNOOPFS_UNIT_TMP}" "${unit}")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system"
	TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
	FILES "${SNOOPFS_UNIT_TMP}")
