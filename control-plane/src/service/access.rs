//! Who may see and who may manage a meeting. A leaf: the meeting and host services both ask.

use crate::auth::Principal;
use crate::store::{self, MeetingRecord};

/// May `caller` see (and try to join) `meeting`?
pub fn may_see(caller: &Principal, meeting: &MeetingRecord) -> bool {
    caller.is_admin()
        || caller.name == meeting.owner
        || meeting.access != store::Access::Private
        || meeting.allowed_users.contains(&caller.name)
}

/// May `caller` change `meeting` (its owner or an admin, a person)?
pub fn may_manage(caller: &Principal, meeting: &MeetingRecord) -> bool {
    caller.is_person() && (caller.is_admin() || caller.name == meeting.owner)
}
