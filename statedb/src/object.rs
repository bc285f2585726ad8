//! An object as stored in a table's trees.

use std::sync::Arc;

use crate::Revision;

/// An object as stored: shared, immutable, with the revision of its last
/// change (for a deleted object in the graveyard: of its delete).
pub(crate) struct Object<T> {
    pub data: Arc<T>,
    pub revision: Revision,
}

impl<T> Clone for Object<T> {
    fn clone(&self) -> Self {
        Object {
            data: self.data.clone(),
            revision: self.revision,
        }
    }
}
