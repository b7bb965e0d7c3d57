//! Where uploaded bytes live: an `object_store` backend (a local directory by default).
//! Keys are content-addressed, so storing the same bytes twice is harmless.

use std::{path::Path, sync::Arc};

use bytes::Bytes;
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, local::LocalFileSystem, path::Path as ObjectPath,
};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
}

impl Objects {
    /// A store rooted at `dir` (created if missing).
    pub fn local(dir: &Path) -> Result<Self, object_store::Error> {
        std::fs::create_dir_all(dir).map_err(|source| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(source),
        })?;
        Ok(Self {
            store: Arc::new(LocalFileSystem::new_with_prefix(dir)?),
        })
    }

    /// The key for `sha256` bytes in a collection.
    pub fn key(tenant_id: Uuid, collection_id: Uuid, sha256: &str) -> String {
        format!("{tenant_id}/{collection_id}/{sha256}")
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), object_store::Error> {
        self.store
            .put(&ObjectPath::from(key), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// Streams a local file into the store in parts, never holding it whole in memory.
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<(), object_store::Error> {
        use tokio::io::AsyncReadExt as _;
        let generic = |source: std::io::Error| object_store::Error::Generic {
            store: "upload spool",
            source: Box::new(source),
        };
        let mut file = tokio::fs::File::open(path).await.map_err(generic)?;
        let mut upload = object_store::WriteMultipart::new(
            self.store.put_multipart(&ObjectPath::from(key)).await?,
        );
        let mut buffer = vec![0u8; 1024 * 1024];
        loop {
            let read = file.read(&mut buffer).await.map_err(generic)?;
            if read == 0 {
                break;
            }
            upload.write(&buffer[..read]);
            // Bounded memory: at most a few parts in flight.
            upload.wait_for_capacity(4).await?;
        }
        upload.finish().await?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, object_store::Error> {
        self.store.get(&ObjectPath::from(key)).await?.bytes().await
    }

    /// Writes, reads back and deletes a small probe object: the store accepts uploads now.
    pub async fn probe(&self) -> Result<(), object_store::Error> {
        let key = format!(".readiness/{}", Uuid::new_v4());
        let written = Bytes::from_static(b"thinkbank readiness probe");
        self.put(&key, written.clone()).await?;
        let read = self.get(&key).await;
        self.delete(&key).await?;
        if read? != written {
            return Err(object_store::Error::Generic {
                store: "readiness probe",
                source: "the probe object read back differs from what was written".into(),
            });
        }
        Ok(())
    }

    /// Deletes `key`; a missing object is not an error (deletes are retried).
    pub async fn delete(&self, key: &str) -> Result<(), object_store::Error> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// Deletes the stored bytes behind `object_key` unless another asset still uses them. The
/// rows are already gone, so search never sees the asset; a failure leaves an orphan object,
/// which is logged.
pub async fn release(assets: &crate::assets::Assets, objects: &Objects, object_key: &str) {
    match assets.object_in_use(object_key).await {
        Ok(false) => {
            if let Err(error) = objects.delete(object_key).await {
                tracing::warn!(%object_key, %error, "cannot delete stored object");
            }
        }
        Ok(true) => {}
        Err(error) => {
            tracing::warn!(%object_key, %error, "cannot check whether an object is in use")
        }
    }
}
